/// What the config sender remembers about one meter across restarts.
///
/// Written to the state file by `ConfigStateStore`; changed only by
/// `ConfigPlanner`. Times are UTC epoch milliseconds; dates are the site's
/// local date (`yyyy-MM-dd`, shifted by the testing day offset).
public struct MeterRecord: Sendable, Equatable {
    /// Digest of the effective settings last acknowledged in full (every command succeeded).
    public var digest: String?
    /// Those settings, by name, for an operator reading the state file.
    public var settings: [String: Int] = [:]
    /// The local date on which `digest` was acknowledged.
    public var acknowledgedDate: String?
    public var acknowledgedAt: Int64?
    /// The last result of each command, by command name.
    public var commands: [String: CommandResult] = [:]
    /// The last failure or timeout, as a sentence; cleared when the meter is fully acknowledged.
    public var lastError: String?
    /// When a clock command last went out to this meter (limits clock-offset corrections to one an hour).
    public var lastClockSentAt: Int64?

    public init() {}
}

/// What changed in one meter's record since it was last handed to the state
/// database: the rows to write, and the record to take them from.
public struct MeterRecordChange: Sendable, Equatable {
    /// The record now; nil: the meter is gone (its rows are deleted).
    public var record: MeterRecord?
    /// Its `meters` row differs.
    public var meterRow: Bool
    /// The commands whose rows differ (a name the record no longer has: its row is deleted).
    public var commands: Set<String>

    /// From `old` (what was there; nil: nothing) to `new`.
    public init(from old: MeterRecord?, to new: MeterRecord?) {
        record = new
        switch (old, new) {
        case (let old?, let new?):
            meterRow = old.digest != new.digest || old.settings != new.settings || old.acknowledgedDate != new.acknowledgedDate
                || old.acknowledgedAt != new.acknowledgedAt || old.lastClockSentAt != new.lastClockSentAt || old.lastError != new.lastError
            commands = Set(new.commands.keys.filter { old.commands[$0] != new.commands[$0] })
                .union(old.commands.keys.filter { new.commands[$0] == nil })
        default:
            meterRow = true
            commands = Set((old ?? new)?.commands.keys.map { $0 } ?? [])
        }
    }

    /// Folds a newer change of the same meter into this one, not yet written.
    public mutating func merge(_ newer: MeterRecordChange) {
        if record != nil, newer.record == nil { commands.formUnion(record!.commands.keys) }
        record = newer.record
        meterRow = meterRow || newer.meterRow
        commands.formUnion(newer.commands)
    }
}

/// The outcome of the last attempt to deliver one command to one meter.
public struct CommandResult: Sendable, Equatable {
    public enum Outcome: String, Sendable {
        /// The meter answered with the success code.
        case success
        /// The meter answered with another code (`"02"`).
        case failure
        /// No answer after every retry.
        case timeout
    }

    public var outcome: Outcome
    /// The value the command carried (a setting, or the clock time sent).
    public var value: String?
    /// Local date of the outcome.
    public var date: String
    public var at: Int64
    public var operationID: String?
    /// The meter's `msg`, or our own explanation of a timeout.
    public var message: String?

    public init(outcome: Outcome, value: String?, date: String, at: Int64, operationID: String?, message: String?) {
        self.outcome = outcome
        self.value = value
        self.date = date
        self.at = at
        self.operationID = operationID
        self.message = message
    }
}
