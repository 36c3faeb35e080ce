import Testing
@testable import RuleEngine

/// A meter's clock is parsed word by word against the compiled format: the
/// same times, and the same refusals, as reading it field by field.
@Suite struct ClockFormatTests {
    let formats = ["yyyyMMddHHmmss", "yyyy-MM-dd HH:mm:ss", "yyyy-MM-dd", "dd.MM.yyyy HH:mm", "HHmmss yyyy", "yyyyMMddHHmmss+0000",
                   "yyyy", "yyyyMM", "MM/yyyy/MM HHmmss", "ssmmHHddMMyyyy"]

    /// Field by field, as the format reads: the oracle.
    func reference(_ format: ClockFormat, _ text: String) -> Int64? { reference(format, Array(text.utf8)) }

    func reference(_ format: ClockFormat, _ bytes: [UInt8]) -> Int64? {
        guard bytes.count == format.length else { return nil }
        var y = 0, mo = 1, d = 1, h = 0, mi = 0, s = 0, at = 0
        func digits(_ n: Int) -> Int? {
            var v = 0
            for k in at..<at + n {
                guard bytes[k] >= 48 && bytes[k] <= 57 else { return nil }
                v = v * 10 + Int(bytes[k] - 48)
            }
            at += n
            return v
        }
        for part in format.parts {
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
        let monthDays = mo == 2 ? (y % 4 == 0 && (y % 100 != 0 || y % 400 == 0) ? 29 : 28) : (mo == 4 || mo == 6 || mo == 9 || mo == 11 ? 30 : 31)
        guard d <= monthDays else { return nil }
        return referenceDays(y, mo, d) * 86400 + Int64(h * 3600 + mi * 60 + s)
    }

    /// Howard Hinnant's days-from-civil, signed all through.
    func referenceDays(_ y0: Int, _ m: Int, _ d: Int) -> Int64 {
        let y = m <= 2 ? y0 - 1 : y0
        let era = (y >= 0 ? y : y - 399) / 400
        let yoe = y - era * 400
        let doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy
        return Int64(era * 146097 + doe - 719468)
    }

    func parse(_ format: ClockFormat, _ text: String) -> Int64? { parse(format, Array(text.utf8)) }

    func parse(_ format: ClockFormat, _ bytes: [UInt8]) -> Int64? { bytes.withUnsafeBytes { format.parse($0) } }

    /// Every day of the years four digits hold, both ways.
    @Test func daysFromCivilOverFourDigitYears() {
        for y in [0, 1, 4, 99, 100, 400, 1600, 1900, 1969, 1970, 2000, 2026, 2100, 2400, 9999] {
            for m in 1...12 {
                for d in [1, 28, 29, 30, 31] {
                    #expect(days(fromCivil: y, m, d) == referenceDays(y, m, d), "\(y)-\(m)-\(d)")
                }
            }
        }
        // 0000-01-01 ... 9999-12-31: both ends day by day, a day in 997 between.
        for day in Array(stride(from: Int64(-719_528), through: 2_932_896, by: 997)) + Array(-719_528 ... -719_000) + Array(2_932_000...2_932_896) {
            let (y, m, d) = civil(fromDays: day)
            #expect(days(fromCivil: y, m, d) == day, "\(y)-\(m)-\(d)")
        }
    }

    @Test func renderedTimesParseBack() throws {
        for source in formats {
            let format = try #require(ClockFormat(source))
            for seconds in stride(from: Int64(-2_000_000_000), through: 4_000_000_000, by: 7_777_777) {
                let text = format.render(Instant(epochMillis: seconds * 1000))
                #expect(parse(format, text) == reference(format, text), "\(source): \(text)")
                #expect(parse(format, text) != nil, "\(source): \(text)")
                if ["yyyy", "MM", "dd", "HH", "mm", "ss"].allSatisfy(source.contains) {
                    #expect(parse(format, text) == seconds, "\(source): \(text)")
                }
            }
        }
    }

    /// Every byte of a valid value replaced by every byte: each field's
    /// range, the literals, the digits — and the days a month does not have.
    @Test func everyAlterationIsJudgedAsFieldByField() throws {
        for source in formats {
            let format = try #require(ClockFormat(source))
            for base in [format.render(Instant(epochMillis: 1_768_237_140_000)), format.render(Instant(epochMillis: 951_782_400_000))] {
                let bytes = Array(base.utf8)
                for k in bytes.indices {
                    for b in UInt8.min...UInt8.max {
                        var altered = bytes
                        altered[k] = b
                        #expect(parse(format, altered) == reference(format, altered), "\(source): byte \(k) of \(base) as \(b)")
                    }
                }
            }
        }
        let compact = try #require(ClockFormat("yyyyMMddHHmmss"))
        for (text, valid) in [("20260231120000", false), ("20240229120000", true), ("21000229120000", false), ("20000229120000", true),
                              ("20261301120000", false), ("20261200120000", false), ("20261231240000", false), ("20261231236000", false),
                              ("20261231235960", true), ("20261231235961", false), ("2026123123596", false), ("202612312359600", false),
                              ("2026-1231235960", false), ("20261231235\u{7F}60", false)] {
            #expect((parse(compact, text) != nil) == valid, "\(text)")
            #expect(parse(compact, text) == reference(compact, text), "\(text)")
        }
    }
}
