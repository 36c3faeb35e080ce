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
/// hash of the key bytes; keys are a few bytes long, so this beats hashing a
/// `String` by a wide margin and never allocates.
public final class KeyTable: @unchecked Sendable {
    // Immutable after init, so sharing across threads is safe. Raw buffers,
    // not arrays: a lookup then touches no reference counts and no closures.
    /// Per entry: offset and length of its key in `keyBytes`, its slot (or
    /// `-1` for keys that are only flagged) and whether it is ignored for the
    /// all-zero test.
    private let keyOffsets: UnsafeMutableBufferPointer<Int32>
    private let keyLengths: UnsafeMutableBufferPointer<Int32>
    private let entrySlots: UnsafeMutableBufferPointer<Int16>
    private let entryIgnored: UnsafeMutableBufferPointer<Bool>
    private let keyBytes: UnsafeMutableBufferPointer<UInt8>
    private let buckets: UnsafeMutableBufferPointer<Int16>   // index into the entries, -1 empty
    private let mask: Int
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
        var size = 8
        while size < keys.count * 4 { size <<= 1 }
        var buckets = [Int16](repeating: -1, count: size)
        var bytes: [UInt8] = []
        var offsets: [Int32] = [], lengths: [Int32] = []
        for (i, entry) in keys.enumerated() {
            offsets.append(Int32(bytes.count))
            lengths.append(Int32(entry.key.count))
            bytes += entry.key
            var b = Int(KeyTable.hash(entry.key)) & (size - 1)
            while buckets[b] >= 0 { b = (b + 1) & (size - 1) }
            buckets[b] = Int16(i)
        }
        func copy<T>(_ a: [T]) -> UnsafeMutableBufferPointer<T> {
            let p = UnsafeMutableBufferPointer<T>.allocate(capacity: max(1, a.count))
            _ = p.initialize(from: a)
            return p
        }
        self.keyOffsets = copy(offsets)
        self.keyLengths = copy(lengths)
        self.entrySlots = copy(keys.map(\.slot))
        self.entryIgnored = copy(keys.map(\.ignored))
        self.keyBytes = copy(bytes)
        self.buckets = copy(buckets)
        self.mask = size - 1
        self.slotCount = slots.count
    }

    deinit {
        keyOffsets.deallocate()
        keyLengths.deallocate()
        entrySlots.deallocate()
        entryIgnored.deallocate()
        keyBytes.deallocate()
        buckets.deallocate()
    }

    @inline(__always)
    static func hash(_ bytes: UnsafeRawBufferPointer, _ start: Int, _ end: Int) -> UInt32 {
        var h: UInt32 = 2_166_136_261
        var i = start
        while i < end {
            h = (h ^ UInt32(bytes[i])) &* 16_777_619
            i += 1
        }
        return h
    }

    static func hash(_ key: [UInt8]) -> UInt32 {
        key.withUnsafeBytes { hash($0, 0, $0.count) }
    }

    /// Finds the entry for the key bytes `start..<end`, or nil.
    @inline(__always)
    func lookup(_ bytes: UnsafeRawBufferPointer, _ start: Int, _ end: Int) -> (slot: Int, ignored: Bool)? {
        lookup(hash: KeyTable.hash(bytes, start, end), bytes, start, end)
    }

    /// Lookup with the key's hash already computed (the scanner hashes while it reads).
    @inline(__always)
    func lookup(hash: UInt32, _ bytes: UnsafeRawBufferPointer, _ start: Int, _ end: Int) -> (slot: Int, ignored: Bool)? {
        let length = end - start
        var b = Int(hash) & mask
        while true {
            let e = Int(buckets[b])
            if e < 0 { return nil }
            if Int(keyLengths[e]) == length {
                let offset = Int(keyOffsets[e])
                var i = 0
                while i < length && keyBytes[offset + i] == bytes[start + i] { i += 1 }
                if i == length { return (Int(entrySlots[e]), entryIgnored[e]) }
            }
            b = (b + 1) & mask
        }
    }

    func lookup(decodedKey: [UInt8]) -> (slot: Int, ignored: Bool)? {
        decodedKey.withUnsafeBytes { lookup($0, 0, $0.count) }
    }
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
        // common shapes inline: plain ASCII keys and strings, numbers without
        // an exponent. Anything else goes to `Parser` from the same offset.
        let n = bytes.count
        var i = p.i + 1
        var allZero = true
        // No nested functions capture `i`: a captured variable lives in memory,
        // and this loop wants it in a register.
        while i < n && isSpace(bytes[i]) { i += 1 }
        if i < n && bytes[i] == UInt8(ascii: "}") {
            i += 1
        } else {
            while true {
                while i < n && isSpace(bytes[i]) { i += 1 }
                guard i < n, bytes[i] == UInt8(ascii: "\"") else { throw failure(.invalidToken, i, n) }
                // Key: hash while scanning.
                let keyStart = i + 1
                var j = keyStart
                var hash: UInt32 = 2_166_136_261
                var plain = true
                while j < n {
                    let c = bytes[j]
                    if c == UInt8(ascii: "\"") { break }
                    if c == UInt8(ascii: "\\") || c < 0x20 || c >= 0x80 { plain = false; break }
                    hash = (hash ^ UInt32(c)) &* 16_777_619
                    j += 1
                }
                let keyEnd: Int
                var hasEscape = false
                if plain && j < n {
                    keyEnd = j
                    i = j + 1
                } else {
                    p.i = i
                    hasEscape = try p.skipString()
                    i = p.i
                    keyEnd = i - 1
                    hash = KeyTable.hash(bytes, keyStart, keyEnd)
                }
                while i < n && isSpace(bytes[i]) { i += 1 }
                guard i < n, bytes[i] == UInt8(ascii: ":") else { throw failure(.invalidToken, i, n) }
                i += 1
                while i < n && isSpace(bytes[i]) { i += 1 }
                guard i < n else { throw failure(.truncated, i, n) }
                let valueStart = i
                var kind = ValueKind.number
                var isZero = true
                var fast = false
                let c0 = bytes[i]
                if c0 == UInt8(ascii: "\"") {
                    // String value: plain ASCII inline.
                    j = i + 1
                    while j < n {
                        let c = bytes[j]
                        if c == UInt8(ascii: "\"") { fast = true; break }
                        if c == UInt8(ascii: "\\") || c < 0x20 || c >= 0x80 { break }
                        j += 1
                    }
                    if fast { i = j + 1; kind = .string; isZero = false }
                } else if c0 &- UInt8(ascii: "0") < 10 || c0 == UInt8(ascii: "-") {
                    // Number: -?(0|[1-9][0-9]{0,17})(.[0-9]+)? inline; exponents and long integers go slow.
                    j = c0 == UInt8(ascii: "-") ? i + 1 : i
                    let intStart = j
                    if j < n && bytes[j] == UInt8(ascii: "0") {
                        j += 1
                    } else if j < n && bytes[j] &- UInt8(ascii: "1") < 9 {
                        isZero = false
                        j += 1
                        while j < n && bytes[j] &- UInt8(ascii: "0") < 10 { j += 1 }
                    } else {
                        j = -1
                    }
                    if j > 0 && j - intStart < 19 {
                        if j < n && bytes[j] == UInt8(ascii: ".") {
                            j += 1
                            let fracStart = j
                            var nonZeroBits: UInt8 = 0
                            while j < n {
                                let c = bytes[j]
                                if c &- UInt8(ascii: "0") >= 10 { break }
                                nonZeroBits |= c ^ UInt8(ascii: "0")
                                j += 1
                            }
                            if nonZeroBits != 0 { isZero = false }
                            if j == fracStart { j = -1 }
                        }
                        if j > 0 && j < n {
                            let next = bytes[j] | 0x20
                            if next >= UInt8(ascii: "a") && next <= UInt8(ascii: "z") { j = -1 }
                        }
                        if j > 0 && j < n { fast = true; i = j }
                    }
                    if !fast { isZero = true }
                }
                if !fast {
                    p.i = valueStart
                    (kind, isZero) = try p.scanValue()
                    i = p.i
                }
                let found = hasEscape
                    ? table.lookup(decodedKey: unescape(bytes, keyStart, keyEnd))
                    : table.lookup(hash: hash, bytes, keyStart, keyEnd)
                if let found {
                    if found.slot >= 0 {
                        slots[found.slot] = FieldSlice(start: Int32(valueStart), end: Int32(i), kind: kind, isZero: isZero)
                    }
                    if !found.ignored && !isZero { allZero = false }
                } else if !isZero {
                    allZero = false
                }
                while i < n && isSpace(bytes[i]) { i += 1 }
                guard i < n else { throw failure(.truncated, i, n) }
                let c = bytes[i]
                i += 1
                if c == UInt8(ascii: ",") { continue }
                if c == UInt8(ascii: "}") { break }
                throw ScanError(kind: .invalidToken, offset: i - 1)
            }
        }
        while i < n && isSpace(bytes[i]) { i += 1 }
        if i != n { throw ScanError(kind: .trailingGarbage, offset: i) }
        return ScanResult(allZero: allZero)
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
                skipSpace()
                guard i < n else { throw error(.truncated) }
                let c = bytes[i]
                i += 1
                if c == UInt8(ascii: ",") { continue }
                if c == UInt8(ascii: "}") { return }
                i -= 1
                throw error(.invalidToken)
            }
        case UInt8(ascii: "["):
            i += 1
            skipSpace()
            if peek() == UInt8(ascii: "]") { i += 1; return }
            while true {
                skipSpace()
                try skipValue(depth: depth + 1)
                skipSpace()
                guard i < n else { throw error(.truncated) }
                let c = bytes[i]
                i += 1
                if c == UInt8(ascii: ",") { continue }
                if c == UInt8(ascii: "]") { return }
                i -= 1
                throw error(.invalidToken)
            }
        case UInt8(ascii: "t"): try literal("true")
        case UInt8(ascii: "f"): try literal("false")
        case UInt8(ascii: "n"): try literal("null")
        case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"): _ = try skipNumber()
        default: throw error(bytes[i] >= 0x80 ? .invalidUTF8 : .invalidToken)
        }
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
