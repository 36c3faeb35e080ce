#if canImport(Glibc)
import Glibc
#endif

/// A point on the monotonic clock (CLOCK_MONOTONIC): it never jumps with the
/// wall clock, so timers and timeouts measured on it do not either.
public struct MonotonicInstant: Comparable, Sendable {
    public var nanoseconds: UInt64

    public init(nanoseconds: UInt64) {
        self.nanoseconds = nanoseconds
    }

    public static func now() -> MonotonicInstant {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return MonotonicInstant(nanoseconds: UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec))
    }

    public func adding(seconds: Double) -> MonotonicInstant {
        let delta = seconds <= 0 ? 0 : UInt64(min(seconds, 1e9) * 1e9)
        return MonotonicInstant(nanoseconds: nanoseconds &+ delta)
    }

    /// Seconds from `earlier` to `self` (negative if `earlier` is later).
    public func seconds(since earlier: MonotonicInstant) -> Double {
        Double(Int64(bitPattern: nanoseconds &- earlier.nanoseconds)) / 1e9
    }

    public static func < (a: MonotonicInstant, b: MonotonicInstant) -> Bool { a.nanoseconds < b.nanoseconds }
}
