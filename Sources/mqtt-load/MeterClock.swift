import Foundation

/// A meter's wall clock as the proxy reads it: `yyyyMMddHHmmss` in local
/// time, counted here as seconds since 1970 of that local time read as UTC
/// (the proxy's `Instant.localSeconds`).
///
/// The load generator gives the n-th reading of a meter the time
/// `base + n`, so every reading is distinct for the proxy's duplicate filter
/// and the time alone tells which reading a forwarded message was.
enum MeterClock {
    /// The local wall clock now, in the same scale.
    static func localNow() -> Int64 {
        var now = time(nil)
        var parts = tm()
        localtime_r(&now, &parts)
        return Int64(now) + Int64(parts.tm_gmtoff)
    }

    /// Writes the 14 digits of `seconds` (local time read as UTC).
    static func format(_ seconds: Int64) -> [UInt8] {
        let dayNumber = seconds >= 0 ? seconds / 86400 : (seconds - 86399) / 86400
        let secondOfDay = seconds - dayNumber * 86400
        // Howard Hinnant's civil_from_days.
        let z = dayNumber + 719468
        let era = (z >= 0 ? z : z - 146096) / 146097
        let doe = z - era * 146097
        let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100)
        let mp = (5 * doy + 2) / 153
        let day = doy - (153 * mp + 2) / 5 + 1
        let month = mp < 10 ? mp + 3 : mp - 9
        let year = yoe + era * 400 + (month <= 2 ? 1 : 0)
        var out = [UInt8](repeating: 0x30, count: 14)
        func put(_ value: Int64, at end: Int, width: Int) {
            var v = value
            for i in stride(from: end - 1, through: end - width, by: -1) {
                out[i] = 0x30 + UInt8(v % 10)
                v /= 10
            }
        }
        put(year, at: 4, width: 4)
        put(month, at: 6, width: 2)
        put(day, at: 8, width: 2)
        put(secondOfDay / 3600, at: 10, width: 2)
        put(secondOfDay / 60 % 60, at: 12, width: 2)
        put(secondOfDay % 60, at: 14, width: 2)
        return out
    }

    /// Reads 14 digits back into seconds; nil if they are not digits.
    /// (No calendar validation: the load generator wrote them.)
    static func parse(_ bytes: UnsafeRawBufferPointer) -> Int64? {
        guard bytes.count == 14 else { return nil }
        var values: [Int64] = []
        values.reserveCapacity(6)
        var i = 0
        for width in [4, 2, 2, 2, 2, 2] {
            var v: Int64 = 0
            for _ in 0..<width {
                let c = bytes[i]
                guard c >= 0x30 && c <= 0x39 else { return nil }
                v = v * 10 + Int64(c - 0x30)
                i += 1
            }
            values.append(v)
        }
        // Howard Hinnant's days_from_civil.
        let (year, month, day) = (values[0], values[1], values[2])
        let y = month <= 2 ? year - 1 : year
        let era = (y >= 0 ? y : y - 399) / 400
        let yoe = y - era * 400
        let mp = (month + 9) % 12
        let doy = (153 * mp + 2) / 5 + day - 1
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy
        let days = era * 146097 + doe - 719468
        return days * 86400 + values[3] * 3600 + values[4] * 60 + values[5]
    }
}
