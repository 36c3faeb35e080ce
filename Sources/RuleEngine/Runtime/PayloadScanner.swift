/// The kind of a JSON value as the scanner saw it.
public enum ValueKind: UInt8, Sendable {
    case missing = 0, string, number, trueValue, falseValue, null, object, array

    var name: String {
        switch self {
        case .missing: "missing"
        case .string: "string"
        case .number: "number"
        case .trueValue, .falseValue: "boolean"
        case .null: "null"
        case .object: "object"
        case .array: "array"
        }
    }
}

/// Where one wanted field's value sits in the payload bytes.
///
/// `start..<end` is the raw value exactly as written (a string includes its
/// quotes and escapes), so it can leave byte for byte.
public struct FieldSlice: Sendable, Equatable {
    public var start: Int32 = 0
    public var end: Int32 = 0
    public var kind: ValueKind = .missing
    /// True for a number whose every digit is `0` (`0`, `-0.000`, `0e5`).
    public var isZero: Bool = false
}

/// Why a payload was rejected. The offset is the byte where the problem was found.
public struct ScanError: Error, Sendable, Equatable, CustomStringConvertible {
    public enum Kind: String, Sendable {
        case empty = "empty payload"
        case notObject = "not a JSON object"
        case truncated = "truncated JSON"
        case trailingGarbage = "trailing garbage after the JSON object"
        case invalidUTF8 = "invalid UTF-8"
        case invalidToken = "invalid JSON token"
        case invalidString = "invalid string"
        case invalidNumber = "invalid number"
        case numberOutOfRange = "number out of range"
        case tooDeep = "nesting too deep"
    }
    public var kind: Kind
    public var offset: Int
    public var description: String { "\(kind.rawValue) at byte \(offset)" }
}

/// The compiled set of top-level keys one route cares about.
///
/// Built once at compile time. Lookup is an open-addressing table over a cheap
/// hash of the key bytes (`KeyHash`); keys are a few bytes long, so this beats
/// hashing a `String` by a wide margin and never allocates.
public final class KeyTable: @unchecked Sendable {
    /// One bucket, 16 bytes. For a key under 8 bytes, the common case, `tail`
    /// is the whole key, so two compares decide a match; longer keys then
    /// compare their bytes in `keyBytes` from `keyOffsets[bucket]`.
    struct Entry {
        /// The key's last `length % 8` bytes as a little-endian word (see `KeyHash`).
        var tail: UInt64 = 0
        /// `-1` marks an empty bucket.
        var length: Int32 = -1
        /// The value slot, or `-1` for keys that are only flagged.
        var slot: Int16 = -1
        /// Whether the key's value is ignored for the all-zero test.
        var ignored = false
    }

    // Immutable after init, so sharing across threads is safe. Raw buffers,
    // not arrays: a lookup then touches no reference counts and no closures.
    private let buckets: UnsafeMutableBufferPointer<Entry>
    private let keyOffsets: UnsafeMutableBufferPointer<Int32>
    private let keyBytes: UnsafeMutableBufferPointer<UInt8>
    private let mask: Int
    /// A bucket is the hash's top bits: those of a product depend on every key byte.
    private let shift: UInt64
    /// Number of value slots a scan fills.
    public let slotCount: Int

    /// - Parameters:
    ///   - slots: the wanted keys; the scan fills slot `i` for `slots[i]`.
    ///   - ignoredForZero: keys whose values do not count for the all-zero test.
    public init(slots: [String], ignoredForZero: Set<String>) {
        var keys: [(key: [UInt8], slot: Int16, ignored: Bool)] = []
        for (i, key) in slots.enumerated() {
            keys.append((Array(key.utf8), Int16(i), ignoredForZero.contains(key)))
        }
        for key in ignoredForZero.sorted() where !slots.contains(key) {
            keys.append((Array(key.utf8), -1, true))
        }
        var size = 8, bits: UInt64 = 3
        while size < keys.count * 4 { size <<= 1; bits += 1 }
        var buckets = [Entry](repeating: Entry(), count: size)
        var offsets = [Int32](repeating: 0, count: size)
        var bytes: [UInt8] = []
        for entry in keys {
            let (hash, tail) = entry.key.withUnsafeBytes { KeyHash.of($0, 0, $0.count) }
            var b = Int(hash >> (64 - bits))
            // Linear probing in insertion order: a repeated key resolves to its first entry.
            while buckets[b].length >= 0 { b = (b + 1) & (size - 1) }
            buckets[b] = Entry(tail: tail, length: Int32(entry.key.count), slot: entry.slot, ignored: entry.ignored)
            offsets[b] = Int32(bytes.count)
            bytes += entry.key
        }
        func copy<T>(_ a: [T]) -> UnsafeMutableBufferPointer<T> {
            let p = UnsafeMutableBufferPointer<T>.allocate(capacity: max(1, a.count))
            _ = p.initialize(from: a)
            return p
        }
        self.buckets = copy(buckets)
        self.keyOffsets = copy(offsets)
        self.keyBytes = copy(bytes)
        self.mask = size - 1
        self.shift = 64 - bits
        self.slotCount = slots.count
    }

    deinit {
        buckets.deallocate()
        keyOffsets.deallocate()
        keyBytes.deallocate()
    }

    /// What a key means to a scan: the slot its value fills (`-1`: none) and
    /// whether the value is left out of the all-zero test.
    struct Match {
        var slot: Int
        var ignored: Bool
        /// A key the table does not hold: no slot, and its value counts.
        static let unknown = Match(slot: -1, ignored: false)
    }

    /// The match for the key bytes `start..<end`.
    func lookup(_ bytes: UnsafeRawBufferPointer, _ start: Int, _ end: Int) -> Match {
        let (hash, tail) = KeyHash.of(bytes, start, end)
        return lookup(hash: hash, tail: tail, bytes, start, end)
    }

    /// Lookup with the key's `KeyHash` and tail already computed (the scanner hashes while it reads).
    @inline(__always)
    func lookup(hash: UInt64, tail: UInt64, _ bytes: UnsafeRawBufferPointer, _ start: Int, _ end: Int) -> Match {
        let length = end &- start
        var b = Int(truncatingIfNeeded: hash &>> shift)
        while true {
            let e = buckets[b]
            if Int(e.length) == length && e.tail == tail && (length < 8 || sameBytes(b, bytes, start, length)) {
                return Match(slot: Int(e.slot), ignored: e.ignored)
            }
            if e.length < 0 { return .unknown }
            b = (b &+ 1) & mask
        }
    }

    /// Whether a long key's bytes equal those of the entry in bucket `b`.
    private func sameBytes(_ b: Int, _ bytes: UnsafeRawBufferPointer, _ start: Int, _ length: Int) -> Bool {
        let offset = Int(keyOffsets[b])
        for k in 0..<length where keyBytes[offset + k] != bytes[start + k] { return false }
        return true
    }

    func lookup(decodedKey: [UInt8]) -> Match {
        decodedKey.withUnsafeBytes { lookup($0, 0, $0.count) }
    }
}

/// The hash of a key: one function of its bytes wherever it is computed, by
/// `KeyTable` at build time, by `of` for escaped or non-ASCII keys, and by the
/// scanner word by word as it reads a plain key.
///
/// The key is cut into 8-byte little-endian words; each full word is mixed in,
/// then the last 0...7 bytes (`tail`, zero-padded). A key under 8 bytes thus
/// costs one multiply: `tail * k`. The length is left out: keys that differ
/// only in trailing zero bytes are rare enough, and a match compares lengths.
enum KeyHash {
    /// An odd constant with well-spread bits (2^64 / golden ratio).
    static let k: UInt64 = 0x9E37_79B9_7F4A_7C15

    /// Mixes one full 8-byte word into `h`.
    @inline(__always)
    static func chunk(_ h: UInt64, _ word: UInt64) -> UInt64 {
        let m = (h ^ word) &* k
        return m ^ (m &>> 32)   // a product's high bits see every input bit; fold them into the low ones
    }

    /// The hash from the full words' `h` and the tail word.
    @inline(__always)
    static func finish(_ h: UInt64, _ tail: UInt64) -> UInt64 {
        (h ^ tail) &* k
    }

    /// Hash and tail word of the bytes `start..<end`.
    static func of(_ bytes: UnsafeRawBufferPointer, _ start: Int, _ end: Int) -> (hash: UInt64, tail: UInt64) {
        var h: UInt64 = 0
        var k = start
        while end - k >= 8 {
            h = chunk(h, loadWord(bytes, k, end))
            k += 8
        }
        let tail = loadWord(bytes, k, end)
        return (finish(h, tail), tail)
    }
}

// MARK: SWAR: eight bytes per step in a UInt64
//
// A word holds bytes `at..<at+8` with byte `at` in the lowest lane. The tests
// below set the high bit (0x80) of every lane that stops a run. Only the
// lowest set lane is exact: a borrow or carry can flag lanes above it, never
// below, so a run's length is `trailingZeroBitCount / 8` of the stop mask.
// Offsets are payload offsets, far from overflow, so they use `&+`.

/// 0x01 in every lane; `c &* lanes` repeats byte `c` in every lane.
private let lanes: UInt64 = 0x0101_0101_0101_0101
private let highBits: UInt64 = 0x8080_8080_8080_8080

/// The bytes `at..<min(at + 8, end)` as a little-endian word; lanes at or past
/// `end` are zero, and every run below stops at a zero byte. Big-endian
/// machines get the same word through the byte swap of `littleEndian`.
@inline(__always)
func loadWord(_ bytes: UnsafeRawBufferPointer, _ at: Int, _ end: Int) -> UInt64 {
    if _fastPath(end &- at >= 8) {
        return UInt64(littleEndian: bytes.loadUnaligned(fromByteOffset: at, as: UInt64.self))
    }
    return loadShortWord(bytes, at, end)
}

/// `loadWord` near the end: byte by byte, out of line to keep the hot path short.
@inline(never)
private func loadShortWord(_ bytes: UnsafeRawBufferPointer, _ at: Int, _ end: Int) -> UInt64 {
    var w: UInt64 = 0
    var k = end
    while k > at {
        k -= 1
        w = w << 8 | UInt64(bytes[k])
    }
    return w
}

/// Lane `index` (0...7) of `w`.
@inline(__always)
private func lane(_ w: UInt64, _ index: Int) -> UInt8 {
    UInt8(truncatingIfNeeded: w &>> UInt64(truncatingIfNeeded: index &* 8))
}

/// The number of lanes before the first stop (`stops` is not 0).
@inline(__always)
private func leadingLanes(_ stops: UInt64) -> Int {
    stops.trailingZeroBitCount &>> 3
}

/// A mask of the lanes before the first stop (all lanes when there is none).
@inline(__always)
private func lanesBefore(_ stops: UInt64) -> UInt64 {
    // stops & -stops keeps the lowest stop bit, bit 7 of its lane; >> 7 makes
    // it bit 0 of that lane, and - 1 sets every bit below it.
    ((stops & (0 &- stops)) &>> 7) &- 1
}

/// Stop lanes of a plain string: `"`, `\`, a control byte (< 0x20) or a non-ASCII byte (>= 0x80).
@inline(__always)
private func stringStops(_ w: UInt64) -> UInt64 {
    let quote = w ^ (0x22 &* lanes)       // lanes holding `"` become 0
    let backslash = w ^ (0x5C &* lanes)   // lanes holding `\` become 0
    // x - 1 sets the high bit of a lane that was 0; w - 0x20 that of a lane
    // below 0x20; w has it in a lane >= 0x80. An ASCII lane that is none of
    // these sets nothing and borrows nothing, so no stop is flagged early.
    return ((quote &- lanes) | (backslash &- lanes) | (w &- 0x20 &* lanes) | w) & highBits
}

/// A plain string run from `at`: the offset of its first stop and the byte
/// there (0 if the buffer ends first; then the offset is `n`).
@inline(__always)
private func stringRun(_ bytes: UnsafeRawBufferPointer, _ at: Int, _ n: Int) -> (end: Int, stop: UInt8) {
    var k = at
    var w = loadWord(bytes, k, n)
    var stops = stringStops(w)
    while stops == 0 {
        k &+= 8
        w = loadWord(bytes, k, n)
        stops = stringStops(w)
    }
    let count = leadingLanes(stops)
    return (k &+ count, lane(w, count))
}

/// Stop lanes of a digit run: any byte but `0`...`9`. Also returns `t`, the
/// word with every lane xor `0`: digits become 0...9, so `t` masked to the
/// digit lanes is 0 exactly when every digit is `0`.
@inline(__always)
private func digitStops(_ w: UInt64) -> (stops: UInt64, t: UInt64) {
    let t = w ^ (0x30 &* lanes)
    // t + 0x76 reaches 0x80 exactly when t >= 10; a lane >= 0x80 (whose
    // + 0x76 may carry upward) is flagged by t itself.
    return (((t &+ 0x76 &* lanes) | t) & highBits, t)
}

/// A run of digits from `at`: its length, whether every digit is `0`, and the
/// byte after it (0 if the buffer ends first).
@inline(__always)
private func digitRun(_ bytes: UnsafeRawBufferPointer, _ at: Int, _ n: Int) -> (length: Int, zero: Bool, stop: UInt8) {
    var k = at
    var digitBits: UInt64 = 0   // the digits' values OR-ed together: 0 when all are `0`
    while true {
        let w = loadWord(bytes, k, n)
        let (stops, t) = digitStops(w)
        if stops != 0 {
            let count = leadingLanes(stops)
            digitBits |= t & lanesBefore(stops)
            return (k &+ count &- at, digitBits == 0, lane(w, count))
        }
        digitBits |= t
        k &+= 8
    }
}

/// The key whose bytes start at `at` (after the opening quote), if it is
/// plain ASCII without escapes: the offset of its closing quote and its
/// match, hashed a word at a time as it is read (see `KeyHash`). Nil leaves
/// it to Parser: escapes, UTF-8, control bytes, the end of the buffer.
@inline(__always)
private func plainKey(_ bytes: UnsafeRawBufferPointer, _ at: Int, _ n: Int, _ table: KeyTable) -> (end: Int, match: KeyTable.Match)? {
    var k = at
    var hash: UInt64 = 0   // the full words so far
    var w = loadWord(bytes, k, n)
    var stops = stringStops(w)
    while _slowPath(stops == 0) {
        hash = KeyHash.chunk(hash, w)
        k &+= 8
        w = loadWord(bytes, k, n)
        stops = stringStops(w)
    }
    let count = leadingLanes(stops)
    guard _fastPath(lane(w, count) == UInt8(ascii: "\"")) else { return nil }
    k &+= count
    let tail = w & lanesBefore(stops)
    return (k, table.lookup(hash: KeyHash.finish(hash, tail), tail: tail, bytes, at, k))
}

/// The number whose digits start at `at` (after any `-`), if it has the
/// common shape `(0|[1-9][0-9]{0,17})(.[0-9]+)?` and the byte after it is in
/// the buffer and no letter: its end and whether every digit is `0`. Nil
/// leaves it to Parser: no digit, a leading 0 with more digits ("01"), an
/// integer part too long to be sure it fits in 64 bits, an exponent or
/// another letter ("1e5", "1x"), a number cut off by the end of the buffer.
@inline(__always)
private func plainNumber(_ bytes: UnsafeRawBufferPointer, _ at: Int, _ n: Int) -> (end: Int, zero: Bool)? {
    // Most numbers fit in one word with the byte after them: "229.097," "0.1648}".
    let w = loadWord(bytes, at, n)
    let (stops, t) = digitStops(w)
    if _slowPath(stops == 0) { return longNumber(bytes, at, n) }
    let digits = leadingLanes(stops)
    // No digit, or a leading 0 (lane 0 of t is 0) followed by a digit.
    if digits == 0 || (t & 0xFF == 0 && digits > 1) { return nil }
    var stop = lane(w, digits)
    // High bit in every lane whose t is not 0 (no carries: digit and `.` lanes are small).
    let nonZero = (t &+ 0x7F &* lanes) & highBits
    let end: Int
    let zero: Bool
    if stop == UInt8(ascii: ".") {
        // Stops above the `.`: exact, as nothing carries out of digit lanes or
        // a `.` lane (0x1E + 0x76 < 0x100).
        let fractionStops = stops & (stops &- 1)   // the `.` cleared
        if _slowPath(fractionStops == 0) { return longNumber(bytes, at, n) }
        let fractionEnd = leadingLanes(fractionStops)
        if fractionEnd == digits &+ 1 { return nil }   // no fraction digit
        end = at &+ fractionEnd
        // The bits below the end's stop, without the `.` (a bit of `stops`).
        zero = nonZero & (fractionStops &- 1) & ~stops == 0
        stop = lane(w, fractionEnd)
    } else {
        end = at &+ digits
        zero = nonZero & (stops &- 1) & ~stops == 0   // (s - 1) & ~s: the bits below the lowest stop
    }
    guard end < n && (stop | 0x20) &- UInt8(ascii: "a") >= 26 else { return nil }
    return (end, zero)
}

/// `plainNumber` for digit runs that do not end in the first word.
@inline(never)
private func longNumber(_ bytes: UnsafeRawBufferPointer, _ at: Int, _ n: Int) -> (end: Int, zero: Bool)? {
    let integer = digitRun(bytes, at, n)
    guard integer.length > 0 && integer.length < 19 && (integer.length == 1 || bytes[at] != UInt8(ascii: "0")) else { return nil }
    var end = at + integer.length
    var zero = integer.zero
    var stop = integer.stop
    if stop == UInt8(ascii: ".") {
        let fraction = digitRun(bytes, end + 1, n)
        guard fraction.length > 0 else { return nil }
        end += 1 + fraction.length
        zero = zero && fraction.zero
        stop = fraction.stop
    }
    guard end < n && (stop | 0x20) &- UInt8(ascii: "a") >= 26 else { return nil }
    return (end, zero)
}

/// The result of one scan.
public struct ScanResult: Sendable {
    /// True when every value whose key is not ignored is a zero number.
    public var allZero: Bool
}

/// One pass over a payload: validates the whole document as strict JSON
/// (RFC 8259, UTF-8) and records where the wanted top-level fields are.
///
/// Nothing is decoded or allocated on the way; nested values are validated and
/// skipped. A document is either accepted whole or rejected: a truncated
/// payload, trailing garbage, invalid UTF-8 or a top-level value that is not
/// an object never yields fields. Rejections follow jansson's defaults (the
/// test oracle): `\u0000` and lone surrogates in strings are errors, integers
/// must fit in 64 bits, reals must be finite, and a repeated key keeps its
/// last value.
public enum PayloadScanner {
    static let maxDepth = 2048

    /// Scans `bytes`, filling `slots` (which must hold `table.slotCount` entries).
    public static func scan(
        _ bytes: UnsafeRawBufferPointer, table: KeyTable, slots: UnsafeMutableBufferPointer<FieldSlice>
    ) throws(ScanError) -> ScanResult {
        for i in 0..<table.slotCount { slots[i] = FieldSlice() }
        var p = Parser(bytes: bytes)
        p.skipSpace()
        guard p.i < p.n else { throw ScanError(kind: p.n == 0 ? .empty : .truncated, offset: p.i) }
        guard bytes[p.i] == UInt8(ascii: "{") else {
            // Validate first so that garbage is reported as garbage, not as "not an object".
            try p.skipValue(depth: 0)
            throw ScanError(kind: .notObject, offset: 0)
        }
        // The loop keeps its cursor in a local (a register) and handles the
        // common shapes inline, eight bytes per step: plain ASCII keys and
        // strings, numbers without an exponent. Anything else goes to `Parser`
        // from the same offset, so errors and their offsets are Parser's.
        // Compact JSON has no whitespace: each separator is tried first and
        // spaces are skipped only when it is not there.
        let n = bytes.count
        var i = p.i + 1
        var allZero = true
        // No nested functions capture `i`: a captured variable lives in memory,
        // and this loop wants it in a register.
        i = skipSpace(bytes, i, n)
        if i < n && bytes[i] == UInt8(ascii: "}") {
            i += 1
        } else {
            while true {
                if _slowPath(i >= n || bytes[i] != UInt8(ascii: "\"")) {
                    i = skipSpace(bytes, i, n)
                    guard i < n, bytes[i] == UInt8(ascii: "\"") else { throw failure(.invalidToken, i, n) }
                }
                // Looked up now, the key leaves only its match live across the value.
                let match: KeyTable.Match
                if let key = plainKey(bytes, i &+ 1, n, table) {
                    match = key.match
                    i = key.end &+ 1
                } else {
                    // Escapes, UTF-8, control bytes or the end of the buffer.
                    (i, match) = try slowKey(bytes, i, table)
                }
                if _slowPath(i >= n || bytes[i] != UInt8(ascii: ":")) {
                    i = skipSpace(bytes, i, n)
                    guard i < n, bytes[i] == UInt8(ascii: ":") else { throw failure(.invalidToken, i, n) }
                }
                i &+= 1
                guard i < n else { throw failure(.truncated, i, n) }
                var c0 = bytes[i]
                if _slowPath(c0 <= 0x20) {
                    i = skipSpace(bytes, i, n)
                    guard i < n else { throw failure(.truncated, i, n) }
                    c0 = bytes[i]
                }
                let valueStart = i
                var kind = ValueKind.number
                var isZero = true
                var fast = false
                if c0 &- UInt8(ascii: "0") < 10 || c0 == UInt8(ascii: "-") {
                    if let number = plainNumber(bytes, c0 == UInt8(ascii: "-") ? i &+ 1 : i, n) {
                        fast = true
                        i = number.end
                        isZero = number.zero
                    }
                } else if c0 == UInt8(ascii: "\"") {
                    // String value: plain ASCII inline.
                    let run = stringRun(bytes, i &+ 1, n)
                    if run.stop == UInt8(ascii: "\"") { fast = true; i = run.end &+ 1; kind = .string; isZero = false }
                }
                if _slowPath(!fast) {
                    (kind, isZero, i) = try slowValue(bytes, valueStart)
                }
                if match.slot >= 0 {
                    // Offsets fit in Int32 unless the payload is over 2 GiB; then they are
                    // converted with a check, which traps as the conversion always did.
                    if _slowPath(n > Int32.max) { _ = (Int32(valueStart), Int32(i)) }
                    slots[match.slot] = FieldSlice(start: Int32(truncatingIfNeeded: valueStart), end: Int32(truncatingIfNeeded: i),
                                                   kind: kind, isZero: isZero)
                }
                if !match.ignored && !isZero { allZero = false }
                guard i < n else { throw failure(.truncated, i, n) }
                var c = bytes[i]
                if _slowPath(c <= 0x20) {
                    i = skipSpace(bytes, i, n)
                    guard i < n else { throw failure(.truncated, i, n) }
                    c = bytes[i]
                }
                i &+= 1
                if c == UInt8(ascii: ",") { continue }
                if c == UInt8(ascii: "}") { break }
                throw ScanError(kind: .invalidToken, offset: i - 1)
            }
        }
        while i < n && isSpace(bytes[i]) { i += 1 }
        if i != n { throw ScanError(kind: .trailingGarbage, offset: i) }
        return ScanResult(allZero: allZero)
    }

    /// The key whose opening quote is at `at`, by `Parser`: the offset after
    /// its closing quote and its match. Out of line, like `slowValue`, so
    /// that the scan loop keeps its registers for the common path.
    @inline(never)
    private static func slowKey(_ bytes: UnsafeRawBufferPointer, _ at: Int, _ table: KeyTable) throws(ScanError) -> (Int, KeyTable.Match) {
        var p = Parser(bytes: bytes)
        p.i = at
        let hasEscape = try p.skipString()
        let match = hasEscape
            ? table.lookup(decodedKey: unescape(bytes, at + 1, p.i - 1))
            : table.lookup(bytes, at + 1, p.i - 1)
        return (p.i, match)
    }

    /// The value starting at `at`, by `Parser`: its kind, zero-ness and end.
    @inline(never)
    private static func slowValue(_ bytes: UnsafeRawBufferPointer, _ at: Int) throws(ScanError) -> (ValueKind, Bool, Int) {
        var p = Parser(bytes: bytes)
        p.i = at
        let (kind, isZero) = try p.scanValue()
        return (kind, isZero, p.i)
    }

    /// Validates `bytes` as one JSON value of any kind (used for reply parsing and tests).
    public static func validate(_ bytes: UnsafeRawBufferPointer) throws(ScanError) {
        var p = Parser(bytes: bytes)
        p.skipSpace()
        guard p.i < p.n else { throw ScanError(kind: p.n == 0 ? .empty : .truncated, offset: p.i) }
        try p.skipValue(depth: 0)
        p.skipSpace()
        if p.i != p.n { throw ScanError(kind: .trailingGarbage, offset: p.i) }
    }

    /// Decodes the JSON string body `start..<end` (between the quotes, already validated).
    public static func unescape(_ bytes: UnsafeRawBufferPointer, _ start: Int, _ end: Int) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(end - start)
        var i = start
        func hex4(_ at: Int) -> UInt32 {
            var v: UInt32 = 0
            for k in 0..<4 { v = v << 4 | UInt32(hexValue(bytes[at + k])) }
            return v
        }
        while i < end {
            let c = bytes[i]
            if c != UInt8(ascii: "\\") { out.append(c); i += 1; continue }
            let e = bytes[i + 1]
            i += 2
            switch e {
            case UInt8(ascii: "b"): out.append(8)
            case UInt8(ascii: "f"): out.append(12)
            case UInt8(ascii: "n"): out.append(10)
            case UInt8(ascii: "r"): out.append(13)
            case UInt8(ascii: "t"): out.append(9)
            case UInt8(ascii: "u"):
                var scalar = hex4(i)
                i += 4
                if scalar >= 0xD800 && scalar < 0xDC00 {
                    let low = hex4(i + 2)
                    i += 6
                    scalar = 0x10000 + ((scalar - 0xD800) << 10) + (low - 0xDC00)
                }
                out.append(contentsOf: String(Character(Unicode.Scalar(scalar)!)).utf8)
            default: out.append(e)   // \" \\ \/
            }
        }
        return out
    }

    /// Decodes a raw JSON string value (with quotes) into a Swift string.
    public static func decodeString(_ raw: UnsafeRawBufferPointer) -> String {
        String(decoding: unescape(raw, 1, raw.count - 1), as: UTF8.self)
    }
}

@inline(__always)
private func isSpace(_ c: UInt8) -> Bool {
    c == 0x20 || c == 0x0A || c == 0x0D || c == 0x09
}

/// The first offset from `i` that is not JSON whitespace.
@inline(__always)
private func skipSpace(_ bytes: UnsafeRawBufferPointer, _ i: Int, _ n: Int) -> Int {
    var i = i
    while i < n && isSpace(bytes[i]) { i += 1 }
    return i
}

@inline(__always)
private func failure(_ kind: ScanError.Kind, _ i: Int, _ n: Int) -> ScanError {
    ScanError(kind: i >= n ? .truncated : kind, offset: i)
}

@inline(__always)
func hexValue(_ c: UInt8) -> UInt8 {
    switch c {
    case UInt8(ascii: "0")...UInt8(ascii: "9"): c - UInt8(ascii: "0")
    case UInt8(ascii: "a")...UInt8(ascii: "f"): c - UInt8(ascii: "a") + 10
    case UInt8(ascii: "A")...UInt8(ascii: "F"): c - UInt8(ascii: "A") + 10
    default: 255
    }
}

/// The cursor of one scan. A value type kept in registers; `i` only moves forward.
private struct Parser {
    let bytes: UnsafeRawBufferPointer
    let n: Int
    var i = 0

    init(bytes: UnsafeRawBufferPointer) {
        self.bytes = bytes
        self.n = bytes.count
    }

    @inline(__always) func peek() -> UInt8 { i < n ? bytes[i] : 0 }

    @inline(__always) func error(_ kind: ScanError.Kind) -> ScanError {
        ScanError(kind: i >= n ? .truncated : kind, offset: i)
    }

    @inline(__always) mutating func skipSpace() {
        while i < n {
            let c = bytes[i]
            if c == 0x20 || c == 0x0A || c == 0x0D || c == 0x09 { i += 1 } else { return }
        }
    }

    /// Scans a value whose first byte is at `i`; returns its kind and zero-ness.
    @inline(__always) mutating func scanValue() throws(ScanError) -> (ValueKind, Bool) {
        guard i < n else { throw error(.truncated) }
        let c = bytes[i]
        if c == UInt8(ascii: "-") || (c >= UInt8(ascii: "0") && c <= UInt8(ascii: "9")) {
            return (.number, try skipNumber())
        }
        if c == UInt8(ascii: "\"") {
            _ = try skipString()
            return (.string, false)
        }
        let kind: ValueKind
        switch c {
        case UInt8(ascii: "{"): kind = .object
        case UInt8(ascii: "["): kind = .array
        case UInt8(ascii: "t"): kind = .trueValue
        case UInt8(ascii: "f"): kind = .falseValue
        case UInt8(ascii: "n"): kind = .null
        default: throw error(.invalidToken)
        }
        try skipValue(depth: 1)
        return (kind, false)
    }

    mutating func skipValue(depth: Int) throws(ScanError) {
        guard depth <= PayloadScanner.maxDepth else { throw error(.tooDeep) }
        guard i < n else { throw error(.truncated) }
        switch bytes[i] {
        case UInt8(ascii: "\""): _ = try skipString()
        case UInt8(ascii: "{"):
            i += 1
            skipSpace()
            if peek() == UInt8(ascii: "}") { i += 1; return }
            while true {
                skipSpace()
                guard peek() == UInt8(ascii: "\"") else { throw error(.invalidToken) }
                _ = try skipString()
                skipSpace()
                guard peek() == UInt8(ascii: ":") else { throw error(.invalidToken) }
                i += 1
                skipSpace()
                try skipValue(depth: depth + 1)
                if try closes(UInt8(ascii: "}")) { return }
            }
        case UInt8(ascii: "["):
            i += 1
            skipSpace()
            if peek() == UInt8(ascii: "]") { i += 1; return }
            while true {
                skipSpace()
                try skipValue(depth: depth + 1)
                if try closes(UInt8(ascii: "]")) { return }
            }
        case UInt8(ascii: "t"): try literal("true")
        case UInt8(ascii: "f"): try literal("false")
        case UInt8(ascii: "n"): try literal("null")
        case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"): _ = try skipNumber()
        default: throw error(bytes[i] >= 0x80 ? .invalidUTF8 : .invalidToken)
        }
    }

    /// After a member of a container: `,` (false: another member follows) or
    /// `close` (true: the container ends here); anything else is an error.
    mutating func closes(_ close: UInt8) throws(ScanError) -> Bool {
        skipSpace()
        guard i < n else { throw error(.truncated) }
        let c = bytes[i]
        if c == UInt8(ascii: ",") { i += 1; return false }
        if c == close { i += 1; return true }
        throw error(.invalidToken)
    }

    mutating func literal(_ word: StaticString) throws(ScanError) {
        let length = word.utf8CodeUnitCount
        for k in 0..<length {
            guard i + k < n else { i += k; throw error(.truncated) }
            if bytes[i + k] != word.utf8Start[k] { i += k; throw error(.invalidToken) }
        }
        i += length
    }

    /// Skips a string starting at the opening quote; returns whether it had escapes.
    @inline(__always) mutating func skipString() throws(ScanError) -> Bool {
        i += 1
        var escaped = false
        while i < n {
            let c = bytes[i]
            if c == UInt8(ascii: "\"") { i += 1; return escaped }
            if c == UInt8(ascii: "\\") {
                escaped = true
                try skipEscape()
            } else if c < 0x20 {
                throw error(.invalidString)
            } else if c < 0x80 {
                i += 1
            } else {
                try skipUTF8()
            }
        }
        throw error(.truncated)
    }

    mutating func skipEscape() throws(ScanError) {
        guard i + 1 < n else { i = n; throw error(.truncated) }
        switch bytes[i + 1] {
        case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"), UInt8(ascii: "b"),
             UInt8(ascii: "f"), UInt8(ascii: "n"), UInt8(ascii: "r"), UInt8(ascii: "t"):
            i += 2
        case UInt8(ascii: "u"):
            i += 2
            let high = try hex4()
            if high == 0 { throw ScanError(kind: .invalidString, offset: i - 6) }
            if high >= 0xDC00 && high < 0xE000 { throw ScanError(kind: .invalidString, offset: i - 6) }
            if high >= 0xD800 && high < 0xDC00 {
                guard i + 1 < n else { i = n; throw error(.truncated) }
                guard bytes[i] == UInt8(ascii: "\\"), bytes[i + 1] == UInt8(ascii: "u") else {
                    throw error(.invalidString)
                }
                i += 2
                let low = try hex4()
                guard low >= 0xDC00 && low < 0xE000 else { throw ScanError(kind: .invalidString, offset: i - 6) }
            }
        default:
            i += 1
            throw error(.invalidString)
        }
    }

    mutating func hex4() throws(ScanError) -> UInt32 {
        var v: UInt32 = 0
        for _ in 0..<4 {
            guard i < n else { throw error(.truncated) }
            let h = hexValue(bytes[i])
            guard h < 16 else { throw error(.invalidString) }
            v = v << 4 | UInt32(h)
            i += 1
        }
        return v
    }

    /// Validates one UTF-8 sequence starting at `i` (a byte >= 0x80), per RFC 3629.
    mutating func skipUTF8() throws(ScanError) {
        let c = bytes[i]
        let need: Int
        var lo: UInt8 = 0x80, hi: UInt8 = 0xBF
        switch c {
        case 0xC2...0xDF: need = 1
        case 0xE0: need = 2; lo = 0xA0
        case 0xE1...0xEC, 0xEE...0xEF: need = 2
        case 0xED: need = 2; hi = 0x9F
        case 0xF0: need = 3; lo = 0x90
        case 0xF1...0xF3: need = 3
        case 0xF4: need = 3; hi = 0x8F
        default: throw error(.invalidUTF8)
        }
        guard i + need < n else {
            // A cut-off sequence at the end: report what it is, invalid or truncated.
            var k = 1
            while i + k < n {
                let b = bytes[i + k]
                if k == 1 ? (b < lo || b > hi) : (b < 0x80 || b > 0xBF) { throw error(.invalidUTF8) }
                k += 1
            }
            i = n
            throw error(.truncated)
        }
        let b1 = bytes[i + 1]
        guard b1 >= lo && b1 <= hi else { throw error(.invalidUTF8) }
        if need >= 2 { guard bytes[i + 2] & 0xC0 == 0x80 else { throw error(.invalidUTF8) } }
        if need == 3 { guard bytes[i + 3] & 0xC0 == 0x80 else { throw error(.invalidUTF8) } }
        i += need + 1
    }

    /// Skips a number; returns whether every digit is zero.
    @inline(__always) mutating func skipNumber() throws(ScanError) -> Bool {
        let start = i
        var zero = true
        var isReal = false
        if bytes[i] == UInt8(ascii: "-") { i += 1 }
        guard i < n else { throw error(.truncated) }
        var c = bytes[i]
        if c == UInt8(ascii: "0") {
            i += 1
        } else if c >= UInt8(ascii: "1") && c <= UInt8(ascii: "9") {
            zero = false
            i += 1
            while i < n, bytes[i] &- UInt8(ascii: "0") < 10 { i += 1 }
        } else {
            throw error(.invalidNumber)
        }
        let intDigits = i - start - (bytes[start] == UInt8(ascii: "-") ? 1 : 0)
        if i < n, bytes[i] == UInt8(ascii: ".") {
            isReal = true
            i += 1
            guard i < n else { throw error(.truncated) }
            guard bytes[i] &- UInt8(ascii: "0") < 10 else { throw error(.invalidNumber) }
            while i < n {
                c = bytes[i]
                guard c &- UInt8(ascii: "0") < 10 else { break }
                if c != UInt8(ascii: "0") { zero = false }
                i += 1
            }
        }
        var hasExponent = false
        if i < n, bytes[i] | 0x20 == UInt8(ascii: "e") {
            isReal = true
            hasExponent = true
            i += 1
            guard i < n else { throw error(.truncated) }
            if bytes[i] == UInt8(ascii: "+") || bytes[i] == UInt8(ascii: "-") { i += 1 }
            guard i < n else { throw error(.truncated) }
            guard bytes[i] &- UInt8(ascii: "0") < 10 else { throw error(.invalidNumber) }
            while i < n, bytes[i] &- UInt8(ascii: "0") < 10 { i += 1 }
        }
        // A number glued to a letter ("1x") is an invalid token, as in jansson.
        if i < n {
            let next = bytes[i] | 0x20
            if next >= UInt8(ascii: "a") && next <= UInt8(ascii: "z") { throw error(.invalidNumber) }
        }
        if !isReal {
            if intDigits >= 19 && !fitsInt64(start, i) { throw ScanError(kind: .numberOutOfRange, offset: start) }
        } else if (hasExponent || intDigits > 300) && !zero {
            if !isFiniteReal(start, i) { throw ScanError(kind: .numberOutOfRange, offset: start) }
        }
        return zero
    }

    func fitsInt64(_ start: Int, _ end: Int) -> Bool {
        var k = start
        let negative = bytes[k] == UInt8(ascii: "-")
        if negative { k += 1 }
        var magnitude: UInt64 = 0
        while k < end {
            let (m, o1) = magnitude.multipliedReportingOverflow(by: 10)
            let (s, o2) = m.addingReportingOverflow(UInt64(bytes[k] - UInt8(ascii: "0")))
            if o1 || o2 { return false }
            magnitude = s
            k += 1
        }
        return negative ? magnitude <= UInt64(Int64.max) + 1 : magnitude <= UInt64(Int64.max)
    }

    func isFiniteReal(_ start: Int, _ end: Int) -> Bool {
        let text = String(decoding: UnsafeRawBufferPointer(rebasing: bytes[start..<end]), as: UTF8.self)
        guard let value = Double(text) else { return false }
        return value.isFinite
    }
}
