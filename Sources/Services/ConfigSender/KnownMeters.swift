import Clock
import RuleEngine

/// The meters the config sender knows from discovery: when each was
/// discovered, the clock offset its discovery message reports, a clock
/// correction still owed to it, and its alerts (commands it did not answer).
/// One entry per known meter; `forget` drops it with its alerts.
struct KnownMeters: Sendable {
    struct Meter: Sendable {
        var discoveredAt: Int64
        /// A clock offset beyond the threshold, reported while no clock command could go out yet.
        var clockOffsetToCorrect: Int?
        /// What the meter's discovery message reports now (nil: within the threshold).
        var reportedClockOffset: Int?
        /// By command.
        var alerts: [String: MeterAlert] = [:]
    }

    private(set) var byID: [String: Meter] = [:]

    var count: Int { byID.count }
    var keys: Dictionary<String, Meter>.Keys { byID.keys }
    subscript(id: String) -> Meter? { byID[id] }

    /// A discovery message of meter `id` reporting `clockOffsetSeconds` (its
    /// clock minus the true time), when beyond `threshold` a correction is
    /// owed. `isNew`: the meter was not known; `changed`: what the status
    /// shows of it changed.
    mutating func discovered(_ id: String, clockOffsetSeconds: Int?, threshold: Int, at now: Instant) -> (isNew: Bool, changed: Bool) {
        let isNew = byID[id] == nil
        if isNew { byID[id] = Meter(discoveredAt: now.epochMillis) }
        let reported = clockOffsetSeconds.flatMap { abs($0) > threshold ? $0 : nil }
        let changed = isNew || byID[id]!.reportedClockOffset != reported
        byID[id]!.reportedClockOffset = reported
        if let reported { byID[id]!.clockOffsetToCorrect = reported }
        return (isNew, changed)
    }

    /// The clock correction owed to meter `id`, taken: it is asked for once.
    mutating func takeClockOffset(_ id: String) -> Int? {
        guard let offset = byID[id]?.clockOffsetToCorrect else { return nil }
        byID[id]!.clockOffsetToCorrect = nil
        return offset
    }

    /// Forgets meter `id` and its alerts; false when it was not known.
    mutating func forget(_ id: String) -> Bool { byID.removeValue(forKey: id) != nil }

    /// Raises `alert` for its meter and command (if the meter is known); an
    /// alert already raised is kept unless `renew`. True when it is raised or renewed.
    @discardableResult
    mutating func raise(_ alert: MeterAlert, renew: Bool) -> Bool {
        guard byID[alert.meter] != nil, renew || byID[alert.meter]!.alerts[alert.command] == nil else { return false }
        byID[alert.meter]!.alerts[alert.command] = alert
        return true
    }

    /// Clears the alert of command `command` of meter `id`; true if there was one.
    mutating func clearAlert(meter id: String, command: String) -> Bool {
        byID[id]?.alerts.removeValue(forKey: command) != nil
    }

    /// Every alert, by meter then command.
    var alerts: [MeterAlert] {
        byID.keys.sorted().flatMap { id in byID[id]!.alerts.keys.sorted().map { byID[id]!.alerts[$0]! } }
    }
}

/// An unresolved timeout: a meter that did not answer any attempt of a command.
public struct MeterAlert: Sendable, Equatable {
    public var meter: String
    public var command: String
    public var since: Int64
    public var message: String
}
