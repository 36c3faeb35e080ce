/// A meter's wall clock: a naive local date-time (the meter knows no time
/// zone), counted in seconds since 2000-01-01 00:00:00 and written as
/// `yyyyMMddHHmmss`.
struct MeterTime: Comparable, Hashable {
    var seconds: Int64

    static func < (a: MeterTime, b: MeterTime) -> Bool { a.seconds < b.seconds }

    /// Days from 2000-01-01 to the given civil date (proleptic Gregorian).
    private static func days(year: Int64, month: Int64, day: Int64) -> Int64 {
        // Howard Hinnant's days_from_civil, shifted to the 2000 epoch.
        let y = month <= 2 ? year - 1 : year
        let era = (y >= 0 ? y : y - 399) / 400
        let yoe = y - era * 400
        let mp = (month + 9) % 12
        let doy = (153 * mp + 2) / 5 + day - 1
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy
        return era * 146097 + doe - 719468 - 10957
    }

    init(seconds: Int64) { self.seconds = seconds }

    init?(year: Int, month: Int, day: Int, hour: Int = 0, minute: Int = 0, second: Int = 0) {
        guard (1...9999).contains(year), (1...12).contains(month), (0...23).contains(hour),
              (0...59).contains(minute), (0...59).contains(second) else { return nil }
        let leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0)
        let lengths = [31, leap ? 29 : 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31]
        guard (1...lengths[month - 1]).contains(day) else { return nil }
        seconds = Self.days(year: Int64(year), month: Int64(month), day: Int64(day)) * 86400
            + Int64(hour * 3600 + minute * 60 + second)
    }

    /// Parses exactly 14 digits `yyyyMMddHHmmss` naming a real date and time.
    init?(compact text: String) {
        let digits = Array(text.utf8)
        guard digits.count == 14, digits.allSatisfy({ (0x30...0x39).contains($0) }) else { return nil }
        func field(_ from: Int, _ length: Int) -> Int {
            digits[from..<from + length].reduce(0) { $0 * 10 + Int($1 - 0x30) }
        }
        self.init(year: field(0, 4), month: field(4, 2), day: field(6, 2),
                  hour: field(8, 2), minute: field(10, 2), second: field(12, 2))
    }

    /// `yyyyMMddHHmmss`. Written here rather than taken from the engine's
    /// `ClockFormat` on purpose: the simulator stands in for a meter, and an
    /// independent implementation is what lets tests catch a date bug in the engine.
    var compact: String {
        let dayNumber = seconds >= 0 ? seconds / 86400 : (seconds - 86399) / 86400
        let secondOfDay = seconds - dayNumber * 86400
        // civil_from_days, from the 1970 epoch.
        let z = dayNumber + 10957 + 719468
        let era = (z >= 0 ? z : z - 146096) / 146097
        let doe = z - era * 146097
        let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100)
        let mp = (5 * doy + 2) / 153
        let day = doy - (153 * mp + 2) / 5 + 1
        let month = mp < 10 ? mp + 3 : mp - 9
        let year = yoe + era * 400 + (month <= 2 ? 1 : 0)
        func pad(_ v: Int64, _ width: Int) -> String {
            let s = String(v)
            return String(repeating: "0", count: max(0, width - s.count)) + s
        }
        return pad(year, 4) + pad(month, 2) + pad(day, 2)
            + pad(secondOfDay / 3600, 2) + pad(secondOfDay / 60 % 60, 2) + pad(secondOfDay % 60, 2)
    }

    /// Seconds since midnight (used for tariff periods).
    var secondOfDay: Int64 {
        let r = seconds % 86400
        return r >= 0 ? r : r + 86400
    }

    /// The latest multiple of `interval` seconds (counted from midnight
    /// 2000-01-01, so from every midnight for intervals dividing a day) not after self.
    func floor(to interval: Int64) -> MeterTime {
        let r = seconds % interval
        return MeterTime(seconds: seconds - (r >= 0 ? r : r + interval))
    }
}
