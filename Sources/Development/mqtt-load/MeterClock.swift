import Foundation
import RuleEngine

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

    /// The meters' clock format; the engine's own implementation, so the
    /// load speaks exactly the dialect the proxy parses.
    private static let clock = ClockFormat("yyyyMMddHHmmss")!

    /// Writes the 14 digits of `seconds` (local time read as UTC).
    static func format(_ seconds: Int64) -> [UInt8] {
        Array(clock.render(Instant(epochMillis: seconds * 1000)).utf8)
    }

    /// Reads 14 digits back into seconds; nil if they are not a valid time.
    static func parse(_ bytes: UnsafeRawBufferPointer) -> Int64? {
        clock.parse(bytes)
    }
}
