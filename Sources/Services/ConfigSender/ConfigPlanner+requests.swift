import RuleEngine

/// What `RelayRequests` needs of the planner: which meters are known, fresh
/// operation ids, and the alerts (the status's `alerts`, each meter's problem).
extension ConfigPlanner {
    /// Whether meter `id` was discovered and is configured.
    func isKnown(_ id: String) -> Bool { meters[id] != nil }

    /// A fresh operation id of the packs' length.
    mutating func makeOperationID() -> String { ids.make(length: programs.operationIDLength ?? 32) }

    /// Raises (or renews) an alert for command `command` of meter `id`.
    mutating func raiseAlert(meter id: String, command: String, message: String, now: ConfigTime) {
        if meters.raise(Alert(meter: id, command: command, since: now.wall.epochMillis, message: message), renew: true) { statusVersion += 1 }
    }

    /// Clears the alert of command `command` of meter `id`; true if there was one.
    @discardableResult
    mutating func clearAlert(meter id: String, command: String) -> Bool {
        guard meters.clearAlert(meter: id, command: command) else { return false }
        statusVersion += 1
        return true
    }

    /// Something the status shows changed outside the planner (request counters).
    mutating func statusChanged() { statusVersion += 1 }
}
