/// A moment, as the engine sees it: passed in by the caller, never read from
/// a clock inside the engine (that keeps golden tests deterministic).
public struct Instant: Sendable, Equatable, Comparable {
    /// Milliseconds since 1970-01-01T00:00:00Z.
    public var epochMillis: Int64
    /// The site's offset from UTC at that moment; meters keep local time.
    public var utcOffsetSeconds: Int

    public init(epochMillis: Int64, utcOffsetSeconds: Int = 0) {
        self.epochMillis = epochMillis
        self.utcOffsetSeconds = utcOffsetSeconds
    }

    public init(epochSeconds: Double, utcOffsetSeconds: Int = 0) {
        self.init(epochMillis: Int64((epochSeconds * 1000).rounded()), utcOffsetSeconds: utcOffsetSeconds)
    }

    /// Seconds since 1970 of the local wall clock (local time read as if it were UTC).
    public var localSeconds: Int64 { epochMillis / 1000 + Int64(utcOffsetSeconds) }

    public func adding(seconds: Double) -> Instant {
        Instant(epochMillis: epochMillis + Int64((seconds * 1000).rounded()), utcOffsetSeconds: utcOffsetSeconds)
    }

    public static func < (a: Instant, b: Instant) -> Bool { a.epochMillis < b.epochMillis }
}

/// A wall-clock format made of `yyyy`, `MM`, `dd`, `HH`, `mm`, `ss` and literal characters.
public struct ClockFormat: Sendable, CustomStringConvertible {
    enum Part: Sendable { case year, month, day, hour, minute, second, literal(UInt8) }
    let parts: [Part]
    public let description: String
    /// Length in bytes of a rendered value.
    let length: Int
    /// What `parse` checks, compiled from `parts` (a meter's every reading
    /// is parsed): per 8-byte word of a value, the bytes a valid one has
    /// (`0` where a digit goes, the literal elsewhere) and which of them are
    /// digits; then where each field is (its last place, -1 when the format
    /// has none), and the places of a field written twice before its last.
    private let expected: [UInt64]
    private let digitLanes: [UInt64]
    private let yearAt: Int, monthAt: Int, dayAt: Int, hourAt: Int, minuteAt: Int, secondAt: Int
    private let repeated: [(kind: Field, at: Int)]

    enum Field: Sendable { case year, month, day, hour, minute, second }

    public init?(_ format: String) {
        var parts: [Part] = []
        var rest = Substring(format)
        let tokens: [(String, Part)] = [("yyyy", .year), ("MM", .month), ("dd", .day), ("HH", .hour), ("mm", .minute), ("ss", .second)]
        var length = 0
        outer: while let c = rest.first {
            for (token, part) in tokens where rest.hasPrefix(token) {
                parts.append(part)
                rest = rest.dropFirst(token.count)
                length += token == "yyyy" ? 4 : 2
                continue outer
            }
            guard c.isASCII, !c.isLetter else { return nil }
            parts.append(.literal(c.asciiValue!))
            rest = rest.dropFirst()
            length += 1
        }
        guard parts.contains(where: { if case .year = $0 { true } else { false } }) else { return nil }
        self.parts = parts
        self.description = format
        self.length = length
        var expected = [UInt64](repeating: 0, count: (length + 7) / 8)
        var digitLanes = expected
        var fields: [(kind: Field, at: Int)] = []
        var at = 0
        func set(_ byte: UInt8, digit: Bool) {
            expected[at / 8] |= UInt64(byte) << (8 * UInt64(at % 8))
            if digit { digitLanes[at / 8] |= 0xFF << (8 * UInt64(at % 8)) }
            at += 1
        }
        for part in parts {
            let field: Field
            switch part {
            case .literal(let b): set(b, digit: false); continue
            case .year: field = .year
            case .month: field = .month
            case .day: field = .day
            case .hour: field = .hour
            case .minute: field = .minute
            case .second: field = .second
            }
            fields.append((field, at))
            for _ in 0..<(field == .year ? 4 : 2) { set(UInt8(ascii: "0"), digit: true) }
        }
        self.expected = expected
        self.digitLanes = digitLanes
        func last(_ kind: Field) -> Int { fields.last { $0.kind == kind }?.at ?? -1 }
        yearAt = last(.year)
        monthAt = last(.month)
        dayAt = last(.day)
        hourAt = last(.hour)
        minuteAt = last(.minute)
        secondAt = last(.second)
        repeated = fields.filter { field in field.at != last(field.kind) }
    }

    /// Renders the local wall-clock time of `instant`.
    public func render(_ instant: Instant) -> String {
        let seconds = instant.localSeconds
        let days = seconds >= 0 ? seconds / 86400 : (seconds - 86399) / 86400
        let secondOfDay = Int(seconds - days * 86400)
        let (y, m, d) = civil(fromDays: days)
        func two(_ v: Int) -> String { v < 10 ? "0\(v)" : String(v) }
        var out = ""
        for part in parts {
            switch part {
            case .year: out += pad4(y)
            case .month: out += two(m)
            case .day: out += two(d)
            case .hour: out += two(secondOfDay / 3600)
            case .minute: out += two(secondOfDay / 60 % 60)
            case .second: out += two(secondOfDay % 60)
            case .literal(let b): out.append(Character(Unicode.Scalar(b)))
            }
        }
        return out
    }

    /// Parses `bytes` as a local wall-clock time; returns local seconds since 1970, or nil.
    ///
    /// Every byte is checked a word at a time first (a digit where the
    /// format has one, its literal elsewhere), so reading the fields after
    /// needs no check but their ranges.
    public func parse(_ bytes: UnsafeRawBufferPointer) -> Int64? {
        guard bytes.count == length else { return nil }
        let base = bytes.baseAddress!
        var at = 0
        for w in 0..<expected.count {
            let word: UInt64
            if length &- at >= 8 {
                word = UInt64(littleEndian: base.loadUnaligned(fromByteOffset: at, as: UInt64.self))
            } else if length >= 8 {
                // The last bytes, from the word that ends with them.
                word = UInt64(littleEndian: base.loadUnaligned(fromByteOffset: length - 8, as: UInt64.self)) >> (8 * UInt64(8 - (length - at)))
            } else {
                word = Self.shortWord(base, length)
            }
            // Valid: 0...9 in a digit's lane, 0 in a literal's. Past the
            // first test every digit lane is under 16, so adding 6 carries
            // out of no lane and reaches 16 exactly for 10...15.
            let x = word ^ expected[w]
            let lanes = digitLanes[w]
            let low = 0x0F0F_0F0F_0F0F_0F0F as UInt64
            if x & ~(lanes & low) != 0 || (x &+ (lanes & 0x0606_0606_0606_0606)) & lanes & ~low != 0 { return nil }
            at &+= 8
        }
        if !repeated.isEmpty && !repeatedInRange(base) { return nil }
        let y = yearAt >= 0 ? Self.two(base, yearAt) &* 100 &+ Self.two(base, yearAt &+ 2) : 0
        let mo = monthAt >= 0 ? Self.two(base, monthAt) : 1
        let d = dayAt >= 0 ? Self.two(base, dayAt) : 1
        let h = hourAt >= 0 ? Self.two(base, hourAt) : 0
        let mi = minuteAt >= 0 ? Self.two(base, minuteAt) : 0
        let s = secondAt >= 0 ? Self.two(base, secondAt) : 0
        guard mo >= 1 && mo <= 12 && d >= 1 && h < 24 && mi < 60 && s < 61,
              // A day the month does not have (20260231) is not a time either.
              d <= 28 || d <= daysIn(month: mo, year: y) else { return nil }
        return days(fromCivil: y, mo, d) &* 86400 &+ Int64(h &* 3600 &+ mi &* 60 &+ s)
    }

    /// The two digits at `k`, checked by `parse` already.
    @inline(__always)
    private static func two(_ base: UnsafeRawPointer, _ k: Int) -> Int {
        let pair = UInt16(littleEndian: base.loadUnaligned(fromByteOffset: k, as: UInt16.self))
        return Int(pair & 0xFF) &* 10 &+ Int(pair >> 8) &- 11 * 48
    }

    /// A value shorter than a word, little-endian.
    @inline(never)
    private static func shortWord(_ base: UnsafeRawPointer, _ count: Int) -> UInt64 {
        var word: UInt64 = 0
        for k in stride(from: count - 1, through: 0, by: -1) { word = word << 8 | UInt64(base.load(fromByteOffset: k, as: UInt8.self)) }
        return word
    }

    /// Whether the earlier places of a field written twice hold values in
    /// its range too (the last place's value is the one used).
    @inline(never)
    private func repeatedInRange(_ base: UnsafeRawPointer) -> Bool {
        repeated.allSatisfy { field in
            let v = Self.two(base, field.at)
            switch field.kind {
            case .year: return true
            case .month: return v >= 1 && v <= 12
            case .day: return v >= 1 && v <= 31
            case .hour: return v < 24
            case .minute: return v < 60
            case .second: return v < 61
            }
        }
    }
}

/// The days of month `m` (1...12) of year `y`; arithmetic, not a table, so a parse allocates nothing.
@inline(__always)
private func daysIn(month m: Int, year y: Int) -> Int {
    if m == 2 { return y % 4 == 0 && (y % 100 != 0 || y % 400 == 0) ? 29 : 28 }
    return m == 4 || m == 6 || m == 9 || m == 11 ? 30 : 31
}

private func pad4(_ v: Int) -> String {
    let s = String(v)
    return String(repeating: "0", count: max(0, 4 - s.count)) + s
}

/// Days since 1970-01-01 of the proleptic Gregorian date `y0`-`m`-`d`, for
/// the years four digits hold (0...9999): counted from March of 4801 BC, so
/// every quotient is of a non-negative number (no corrections for negative
/// years, which cost a parse a third of its instructions).
@inline(__always)
func days(fromCivil y0: Int, _ m: Int, _ d: Int) -> Int64 {
    // Wrapping arithmetic: the ranges above keep every step far from overflow.
    let y = UInt(bitPattern: y0 &+ 4800 &- (m <= 2 ? 1 : 0))
    let mp = UInt(bitPattern: m > 2 ? m &- 3 : m &+ 9)
    let julianDay = UInt(bitPattern: d) &+ (153 &* mp &+ 2) / 5 &+ 365 &* y &+ y / 4 &- y / 100 &+ y / 400 &- 32045
    return Int64(bitPattern: UInt64(julianDay)) &- 2_440_588
}

/// Howard Hinnant's civil-from-days (proleptic Gregorian).
func civil(fromDays z0: Int64) -> (Int, Int, Int) {
    let z = Int(z0) + 719468
    let era = (z >= 0 ? z : z - 146096) / 146097
    let doe = z - era * 146097
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365
    let y = yoe + era * 400
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100)
    let mp = (5 * doy + 2) / 153
    let d = doy - (153 * mp + 2) / 5 + 1
    let m = mp < 10 ? mp + 3 : mp - 9
    return (m <= 2 ? y + 1 : y, m, d)
}
