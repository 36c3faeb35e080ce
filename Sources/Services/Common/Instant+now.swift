#if canImport(Glibc)
import Glibc
#endif
import RuleEngine

extension Instant {
    /// The system clock, with the local offset from UTC at this moment (meters
    /// keep local time, so the engine needs it to compare clocks).
    public static func now() -> Instant {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        var seconds = ts.tv_sec
        var local = tm()
        localtime_r(&seconds, &local)
        return Instant(epochMillis: Int64(ts.tv_sec) * 1000 + Int64(ts.tv_nsec) / 1_000_000,
                       utcOffsetSeconds: Int(local.tm_gmtoff))
    }

    /// UTC in ISO 8601 to the second, `2026-01-12T16:39:00Z`, for status documents.
    public var iso8601: String {
        var seconds = time_t(epochMillis / 1000)
        var utc = tm()
        gmtime_r(&seconds, &utc)
        func two(_ v: Int32) -> String { v < 10 ? "0\(v)" : String(v) }
        return "\(utc.tm_year + 1900)-\(two(utc.tm_mon + 1))-\(two(utc.tm_mday))T\(two(utc.tm_hour)):\(two(utc.tm_min)):\(two(utc.tm_sec))Z"
    }
}
