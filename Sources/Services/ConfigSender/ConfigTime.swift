import Clock
import RuleEngine

/// "Now" for the config sender, on the two clocks it needs.
///
/// The wall clock (`wall`, with the local UTC offset) says which day it is
/// (the once-a-day rule), is what the clock command sends and what the state
/// file records. The monotonic clock (`monotonic`) measures every deadline:
/// reply timeouts, backoff, the periodic pass. A wall-clock jump (the first
/// NTP sync of a device that booted in 1970, a manual correction) therefore
/// neither fires nor postpones a timer; it only changes the date.
public struct ConfigTime: Sendable, Equatable {
    public var wall: Instant
    public var monotonic: MonotonicInstant

    public init(wall: Instant, monotonic: MonotonicInstant) {
        self.wall = wall
        self.monotonic = monotonic
    }

    /// Both clocks, read now.
    public static func now() -> ConfigTime {
        ConfigTime(wall: .now(), monotonic: .now())
    }

    /// Both clocks `seconds` later (tests).
    public func adding(seconds: Double) -> ConfigTime {
        ConfigTime(wall: wall.adding(seconds: seconds), monotonic: monotonic.adding(seconds: seconds))
    }
}
