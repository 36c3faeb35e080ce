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
    public func parse(_ bytes: UnsafeRawBufferPointer) -> Int64? {
        guard bytes.count == length else { return nil }
        var y = 0, mo = 1, d = 1, h = 0, mi = 0, s = 0
        var at = 0
        func digits(_ n: Int) -> Int? {
            var v = 0
            for k in at..<at + n {
                let b = bytes[k] &- 48
                guard b < 10 else { return nil }
                v = v * 10 + Int(b)
            }
            at += n
            return v
        }
        for part in parts {
            switch part {
            case .year: guard let v = digits(4) else { return nil }; y = v
            case .month: guard let v = digits(2), (1...12).contains(v) else { return nil }; mo = v
            case .day: guard let v = digits(2), (1...31).contains(v) else { return nil }; d = v
            case .hour: guard let v = digits(2), v < 24 else { return nil }; h = v
            case .minute: guard let v = digits(2), v < 60 else { return nil }; mi = v
            case .second: guard let v = digits(2), v < 61 else { return nil }; s = v
            case .literal(let b): guard bytes[at] == b else { return nil }; at += 1
            }
        }
        // A day the month does not have (20260231) is not a time either.
        guard d <= 28 || d <= daysIn(month: mo, year: y) else { return nil }
        return days(fromCivil: y, mo, d) * 86400 + Int64(h * 3600 + mi * 60 + s)
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

/// Howard Hinnant's days-from-civil and its inverse (proleptic Gregorian).
func days(fromCivil y0: Int, _ m: Int, _ d: Int) -> Int64 {
    let y = m <= 2 ? y0 - 1 : y0
    let era = (y >= 0 ? y : y - 399) / 400
    let yoe = y - era * 400
    let doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy
    return Int64(era * 146097 + doe - 719468)
}

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
