/// Delays between reconnect attempts: exponential from `minimum` to `maximum`,
/// each with ±25 % jitter so that a fleet of clients cut off together does not
/// come back in lock-step. Pure: the random source is passed in.
struct ReconnectBackoff: Sendable {
    let minimum: Double
    let maximum: Double
    /// Failed attempts since the last successful connection.
    private(set) var failures = 0

    init(minimum: Double, maximum: Double) {
        self.minimum = max(0.001, minimum)
        self.maximum = max(self.minimum, maximum)
    }

    /// The delay before the next attempt; counts one more failure.
    /// `unit` is a random number in 0..<1.
    mutating func nextDelay(unit: Double) -> Double {
        // minimum × 2^failures, computed without overflow for long outages.
        let exponent = min(failures, 62)
        let base = min(maximum, minimum * Double(UInt64(1) << UInt64(exponent)))
        failures += 1
        let jittered = base * (0.75 + 0.5 * unit)
        return min(maximum, max(minimum, jittered))
    }

    mutating func nextDelay() -> Double {
        nextDelay(unit: Double.random(in: 0..<1))
    }

    /// After a successful connection the next outage starts from `minimum` again.
    mutating func reset() { failures = 0 }
}
