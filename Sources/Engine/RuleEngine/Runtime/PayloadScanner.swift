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
    /// With a `shape` made for `table`, each member is first checked against
    /// the member at its position in earlier documents (see `DocumentShape`);
    /// the result is the same with or without it.
    public static func scan(
        _ bytes: UnsafeRawBufferPointer, table: KeyTable, slots: UnsafeMutableBufferPointer<FieldSlice>, shape: DocumentShape? = nil
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
        // The expected members: without a shape (or with one for another
        // table) nothing is expected and nothing learned.
        let shape = shape.flatMap { $0.table === table ? $0 : nil }
        let expected = shape?.entries ?? DocumentShape.none
        // The member's position, up to `capacity`, whose entries never match;
        // a position's second entry is `second` entries after its first.
        let capacity = shape == nil ? 0 : DocumentShape.capacity
        let second = capacity &+ 1
        var member = 0
        // Two words from `i` are in the buffer while `i <= shortLimit`, three while
        // `i <= longLimit`; one while `i <= tailLimit`, and then the rest of the
        // buffer, the object's last member usually, is the second word's low lanes.
        let shortLimit = n &- DocumentShape.shortLength, longLimit = n &- DocumentShape.maxLength
        let tailLimit = n &- 8
        // No nested functions capture `i`: a captured variable lives in memory,
        // and this loop wants it in a register.
        i = skipSpace(bytes, i, n)
        if i < n && bytes[i] == UInt8(ascii: "}") {
            i += 1
        } else {
            members: while true {
                // Looked up now, the key leaves only its match live across the value.
                var match = KeyTable.Match.unknown
                var keyFound = false
                // The member this position had last time (see `DocumentShape.Entry`).
                while true {
                    var e = expected + member
                    let w1: UInt64
                    if i <= shortLimit {
                        w1 = UInt64(littleEndian: bytes.loadUnaligned(fromByteOffset: i &+ 8, as: UInt64.self))
                    } else if i <= tailLimit {
                        // Bytes `i + 8..<n` in the low lanes, zero above: no lane accepts a zero byte.
                        w1 = i == tailLimit ? 0 : UInt64(littleEndian: bytes.loadUnaligned(fromByteOffset: tailLimit, as: UInt64.self))
                            &>> UInt64(truncatingIfNeeded: (i &- tailLimit &+ 8) &* 8)
                    } else {
                        break
                    }
                    let w0 = UInt64(littleEndian: bytes.loadUnaligned(fromByteOffset: i, as: UInt64.self))
                    // The position's newest entry, then the one before it.
                    var (fails, d0, d1, d2) = check(e, w0, w1, bytes, i, longLimit)
                    if fails != 0 {
                        e += second
                        (fails, d0, d1, d2) = check(e, w0, w1, bytes, i, longLimit)
                        guard fails == 0 else { break }
                    }
                    if e.pointee.valueEnd == 0 {
                        match = KeyTable.Match(slot: Int(e.pointee.slot), ignored: e.pointee.ignored)
                        i &+= Int(e.pointee.length)
                        keyFound = true
                        break
                    }
                    // Zero-ness only where it is read: a slot, or the all-zero test still open.
                    if e.pointee.slot >= 0 || (allZero && !e.pointee.ignored) {
                        let isZero = (d0 & e.pointee.digits0) | (d1 & e.pointee.digits1) | (d2 & e.pointee.digits2) == e.pointee.zero
                        if e.pointee.slot >= 0 {
                            let start = i &+ Int(e.pointee.valueStart), end = i &+ Int(e.pointee.valueEnd)
                            if _slowPath(n > Int32.max) { _ = (Int32(start), Int32(end)) }
                            slots[Int(e.pointee.slot)] = FieldSlice(start: Int32(truncatingIfNeeded: start), end: Int32(truncatingIfNeeded: end),
                                                                    kind: e.pointee.kind, isZero: isZero)
                        }
                        if !e.pointee.ignored && !isZero { allZero = false }
                    }
                    i &+= Int(e.pointee.length)
                    member &+= 1
                    if e.pointee.closes { break members }
                }
                // The long way, from the same offset. Learned at the end: a plain key
                // right before its colon, then a number of the fast shape or a plain
                // string right before its separator, or only the key.
                let memberStart = i
                var learnable = false
                if !keyFound {
                    if _slowPath(i >= n || bytes[i] != UInt8(ascii: "\"")) {
                        i = skipSpace(bytes, i, n)
                        guard i < n, bytes[i] == UInt8(ascii: "\"") else { throw failure(.invalidToken, i, n) }
                    }
                    learnable = i == memberStart
                    if let key = plainKey(bytes, i &+ 1, n, table) {
                        match = key.match
                        i = key.end &+ 1
                    } else {
                        // Escapes, UTF-8, control bytes or the end of the buffer.
                        (i, match) = try slowKey(bytes, i, table)
                        learnable = false
                    }
                    if _slowPath(i >= n || bytes[i] != UInt8(ascii: ":")) {
                        learnable = false
                        i = skipSpace(bytes, i, n)
                        guard i < n, bytes[i] == UInt8(ascii: ":") else { throw failure(.invalidToken, i, n) }
                    }
                    i &+= 1
                }
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
                // What the position learns besides the key: a number of the fast
                // shape or a plain string (`.missing`: the key alone).
                var learnedValue = ValueKind.missing
                if c0 &- UInt8(ascii: "0") < 10 || c0 == UInt8(ascii: "-") {
                    if let plain = plainNumber(bytes, c0 == UInt8(ascii: "-") ? i &+ 1 : i, n) {
                        fast = true
                        learnedValue = .number
                        i = plain.end
                        isZero = plain.zero
                    }
                } else if c0 == UInt8(ascii: "\"") {
                    // String value: plain ASCII inline.
                    let run = stringRun(bytes, i &+ 1, n)
                    if run.stop == UInt8(ascii: "\"") {
                        fast = true
                        learnedValue = .string
                        i = run.end &+ 1
                        kind = .string
                        isZero = false
                    }
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
                    learnedValue = .missing
                    i = skipSpace(bytes, i, n)
                    guard i < n else { throw failure(.truncated, i, n) }
                    c = bytes[i]
                }
                // Only what could have been checked here: a member that starts less
                // than a word from the end of the buffer is read the long way.
                if learnable && member < capacity && memberStart <= tailLimit,
                   let entry = DocumentShape.entry(bytes, memberStart, valueStart: valueStart, valueEnd: i, kind: learnedValue, match),
                   entry.mask2 == 0 || memberStart <= longLimit {
                    // The newest first: the one it replaces becomes the second.
                    expected[member &+ second] = expected[member]
                    expected[member] = entry
                    shape.unsafelyUnwrapped.learnings &+= 1
                }
                if member < capacity { member &+= 1 }
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

    /// The bytes at `i` (the first two words `w0`, `w1`) against entry `e`:
    /// not 0 when a lane fails (see `DocumentShape.Entry`), and each word's `d`.
    @inline(__always)
    private static func check(_ e: UnsafeMutablePointer<DocumentShape.Entry>, _ w0: UInt64, _ w1: UInt64,
                              _ bytes: UnsafeRawBufferPointer, _ i: Int, _ longLimit: Int) -> (UInt64, UInt64, UInt64, UInt64) {
        let d0 = w0 &- e.pointee.pattern0, d1 = w1 &- e.pointee.pattern1
        var fails = (((d0 &+ e.pointee.add0) | d0) & e.pointee.mask0) | (((d1 &+ e.pointee.add1) | d1) & e.pointee.mask1)
        var d2: UInt64 = 0
        if e.pointee.mask2 != 0 {
            // A third word only where it is in the buffer; past it the entry cannot match.
            guard i <= longLimit else { return (1, d0, d1, d2) }
            d2 = UInt64(littleEndian: bytes.loadUnaligned(fromByteOffset: i &+ 16, as: UInt64.self)) &- e.pointee.pattern2
            fails |= ((d2 &+ e.pointee.add2) | d2) & e.pointee.mask2
        }
        return (fails, d0, d1, d2)
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
