import RuleEngine

/// What `RelayRequests` needs of the planner: which meters are known, fresh
/// operation ids, and the alerts (the status's `alerts`, each meter's problem).
extension ConfigPlanner {
    /// Whether meter `id` was discovered and is configured.
    func isKnown(_ id: String) -> Bool { meters[id] != nil }

    /// A fresh operation id of the packs' length.
    mutating func makeOperationID() -> String { ids.make(length: program.operationIDLength ?? 32) }

    /// Raises (or renews) an alert for command `command` of meter `id`.
    mutating func raiseAlert(meter id: String, command: String, message: String, now: ConfigTime) {
        guard meters[id] != nil else { return }
        meters[id]!.alerts[command] = Alert(meter: id, command: command, since: now.wall.epochMillis, message: message)
        statusVersion += 1
    }

    /// Clears the alert of command `command` of meter `id`; true if there was one.
    @discardableResult
    mutating func clearAlert(meter id: String, command: String) -> Bool {
        guard meters[id]?.alerts.removeValue(forKey: command) != nil else { return false }
        statusVersion += 1
        return true
    }

    /// Something the status shows changed outside the planner (request counters).
    mutating func statusChanged() { statusVersion += 1 }
}
