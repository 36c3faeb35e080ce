import Clock
import RuleEngine

/// The config sender's once-a-day rule for one meter, from the packs and the
/// meter's record alone: a command is satisfied when its last success is from
/// today (the local date) and carried the value it should carry now (the
/// clock command: any value, it was set today); a meter is acknowledged once
/// all of its commands are. Pure: no state of its own besides the packs.
struct DailyRule: Sendable {
    /// Every pack's programs; each meter's commands come from its own pack.
    var programs: ProgramSet

    static let dateFormat = ClockFormat("yyyy-MM-dd")!

    /// The local date for `now`, `yyyy-MM-dd`.
    func today(_ now: Instant) -> String {
        DailyRule.dateFormat.render(now)
    }

    /// Digest of the settings the pack's commands send to meter `id`.
    func digest(for id: String) -> String { DailyRule.digest(programs.effectiveSettings(for: id)) }

    /// The value command `name` would carry for meter `id`; nil when it cannot be sent
    /// (a setting without a value). For the clock: the time now.
    func expectedValue(_ name: String, for id: String, now: Instant) -> String? {
        programs.renderCommand(name, for: id, operationID: "", now: now)?.value
    }

    /// Whether command `name` already succeeded today with the value it should have, by `record`.
    func isSatisfied(_ name: String, for id: String, record: MeterRecord?, now: Instant) -> Bool {
        guard let result = record?.commands[name], result.outcome == .success, result.date == today(now) else { return false }
        if programs.isClockCommand(name) { return true }
        return result.value == expectedValue(name, for: id, now: now)
    }

    /// Whether `pending`, sent, carries a value the packs no longer ask for
    /// (the clock: never; a command not sent yet is built when it leaves).
    func isOutdated(_ pending: PendingCommand, now: Instant) -> Bool {
        guard let message = pending.message, !programs.isClockCommand(pending.command) else { return false }
        return message.value != expectedValue(pending.command, for: pending.meter, now: now)
    }

    /// The commands meter `id` still needs today, in pack order, leaving out those `isBusy` names.
    func needed(by id: String, record: MeterRecord?, isBusy: (String) -> Bool, now: Instant) -> [String] {
        programs.commandNames.filter { name in
            !isBusy(name) && expectedValue(name, for: id, now: now) != nil && !isSatisfied(name, for: id, record: record, now: now)
        }
    }

    /// `record` acknowledged today when every command of meter `id` is
    /// satisfied; nil when one is not, or when it already says so.
    func acknowledged(_ id: String, record: MeterRecord?, now: Instant) -> MeterRecord? {
        let commands = programs.commandNames.filter { expectedValue($0, for: id, now: now) != nil }
        guard commands.allSatisfy({ isSatisfied($0, for: id, record: record, now: now) }) else { return nil }
        let date = today(now), digest = digest(for: id)
        var acknowledged = record ?? MeterRecord()
        guard acknowledged.digest != digest || acknowledged.acknowledgedDate != date || acknowledged.lastError != nil else { return nil }
        acknowledged.digest = digest
        acknowledged.settings = Dictionary(uniqueKeysWithValues: programs.effectiveSettings(for: id).map { ($0.name, $0.value) })
        acknowledged.acknowledgedDate = date
        acknowledged.acknowledgedAt = now.epochMillis
        acknowledged.lastError = nil
        return acknowledged
    }

    /// FNV-1a (64 bit) of `name=value` lines: stable across runs and platforms.
    static func digest(_ settings: [(name: String, value: Int)]) -> String {
        var hash = FNV1a64()
        for (name, value) in settings { hash.add("\(name)=\(value)\n".utf8) }
        let hex = String(hash.value, radix: 16)
        return String(repeating: "0", count: 16 - hex.count) + hex
    }
}
