/// What the engine remembers of one guarded counter of one meter.
struct CounterState: Sendable, Equatable {
    /// The last value forwarded, and the meter's time of it (local seconds).
    var value: Double
    var time: Int64
    /// Readings not forwarded that agree with each other: the start of a reset?
    var candidate: Double?
    var candidateTime: Int64 = 0
    var agreeing = 0
}

/// A field of a route whose counter is guarded: what the check of a reading
/// needs of it, without the rest of the field (its copy costs nothing to count).
struct GuardedField: Sendable {
    let name: String
    let slot: Int
    let rule: CounterGuardRules
}

/// A guarded counter's last forwarded value, for the service to keep across
/// restarts (`Engine.counters`, `Engine.restore`).
public struct CounterSnapshot: Sendable, Equatable {
    public var device: String
    public var field: String
    public var value: Double
    /// The meter's clock at that reading, local seconds since 1970.
    public var time: Int64

    public init(device: String, field: String, value: Double, time: Int64) {
        self.device = device
        self.field = field
        self.value = value
        self.time = time
    }
}
