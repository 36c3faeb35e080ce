import Clock
import RuleEngine
import SiteSettings

/// The config sender's decisions, as a pure state machine.
///
/// Events go in (a meter discovered, a reply, a tick of the clock, a new
/// programs, the internal broker coming or going); actions come out (commands
/// to publish, events to log). No sockets, clocks, threads or randomness
/// inside: time is an argument (`ConfigTime`: the wall clock for dates and
/// records, the monotonic clock for every deadline) and operation ids come
/// from a seeded generator, so every decision can be replayed in a unit test.
///
/// The rule (a hybrid of event and period): a known meter is
/// sent every command whose last success is not from today (local date) with
/// today's expected value. Opportunities are its discovery, the periodic pass
/// over all known meters, a change of its effective settings, and the internal
/// broker (re)connecting. A clock offset reported in a discovery message sends
/// the clock command at once, at most once an hour per meter.
///
/// Each command to each meter is tracked on its own: it waits for the reply
/// with its `oprid`; a timeout is retried with exponential backoff up to
/// `retries` times, then raises an alert. A failure code is recorded and
/// retried at the next opportunity. Meters never wait for each other.
///
/// ## Pacing
/// A command does not go out the moment it is decided: it is queued
/// (`CommandPacer`), and sent when fewer than `maxInFlight` commands await a
/// reply. The reply timeout starts when a command is sent, so a burst of
/// 10,000 discoveries waits in the queue, not in the timeouts. What waits is
/// a meter id and two bytes per command (which command, why); the message
/// (topic, payload, oprid) is built when it leaves, so the queue's memory
/// does not follow how far the replies lag behind.
///
/// A value with no locks: `ConfigSenderCore` owns it on the service's loop
/// thread and runs the returned actions. `nextDeadline` tells it when `tick`
/// has something to do, so nothing polls.
public struct ConfigPlanner: Sendable {
    public typealias Options = ConfigPlannerOptions

    public enum Action: Sendable, Equatable {
        /// Publish with QoS 1 to the internal broker.
        case send(CommandMessage)
        case log(ConfigEvent)
    }

    /// A command decided and not yet resolved.
    public typealias Pending = PendingCommand

    /// An unresolved timeout: a meter that did not answer any attempt of a command.
    public typealias Alert = MeterAlert

    /// Every pack's programs; each meter's commands come from its own pack.
    public var programs: ProgramSet { rule.programs }
    /// What each meter needs today.
    private(set) var rule: DailyRule
    public private(set) var options: Options
    /// What the state file holds, by meter id.
    public var records: [String: MeterRecord] { book.all }
    private(set) var book: MeterRecords
    /// Bumped on every change the status shows.
    public internal(set) var statusVersion = 0
    /// Whether commands may go out (the internal broker is connected).
    public private(set) var internalConnected = false
    /// Set by `drain()`: nothing new is sent, only replies are taken.
    public private(set) var draining = false

    var meters = KnownMeters()
    /// Every command sent and not resolved: oprids, deadlines, the in-flight count.
    var window = PendingCommands()
    /// The commands waiting for their turn, and which goes out next.
    var pacer: CommandPacer
    var ids: OperationIDGenerator
    /// On the monotonic clock, like every deadline here.
    var nextPassAt: MonotonicInstant?

    public init(programs: ProgramSet, options: Options, records: [String: MeterRecord] = [:], ids: OperationIDGenerator = OperationIDGenerator()) {
        self.rule = DailyRule(programs: programs)
        self.options = options
        self.book = MeterRecords(records)
        self.pacer = CommandPacer(commandNames: programs.commandNames, minSpacingSeconds: options.minSpacingSeconds)
        self.ids = ids
    }

    // MARK: Queries

    /// Meter ids known from discovery, sorted.
    public var knownMeters: [String] { meters.keys.sorted() }

    /// Every pending command, by meter then pack order.
    public var pending: [Pending] { pending(first: .max) }

    /// The first `limit` pending commands, by meter then pack order: only the
    /// first meters' are looked at (the status lists ten).
    public func pending(first limit: Int) -> [Pending] {
        var result: [Pending] = []
        for id in Self.smallest(limit, of: window.byMeter.keys, pacer.queuedMeters) where result.count < limit {
            result += pending(of: id)
        }
        return Array(result.prefix(limit))
    }

    /// Meter `id`'s pending commands in pack order: those sent as the window
    /// holds them, those that never left as their queue does (no message yet).
    func pending(of id: String) -> [Pending] {
        var commands = window.commands(of: id)
        for (name, reason) in pacer.queued(of: id) where commands[name] == nil {
            commands[name] = Pending(meter: id, command: name, message: nil, operationIDs: [], attempt: 0, awaitingReply: false,
                                     until: MonotonicInstant(nanoseconds: 0), reason: reason, queued: true)
        }
        return programs.commandNames.compactMap { commands[$0] } + commands.values.filter { !programs.commandNames.contains($0.command) }
    }

    /// The `limit` smallest distinct ids of `a` and `b`, sorted, without sorting them all.
    static func smallest(_ limit: Int, of a: some Sequence<String>, _ b: some Sequence<String>) -> [String] {
        guard limit < .max else { return Set(a).union(b).sorted() }
        var first: [String] = []
        func consider(_ id: String) {
            if first.count >= limit, let last = first.last, id >= last { return }
            let at = first.firstIndex { $0 >= id } ?? first.count
            guard at == first.count || first[at] != id else { return }
            first.insert(id, at: at)
            if first.count > limit { first.removeLast() }
        }
        a.forEach(consider)
        b.forEach(consider)
        return first
    }

    /// Commands decided and not resolved: sent, or waiting for their turn.
    public var pendingCount: Int { window.count + pacer.count - window.queuedCount }

    /// Commands waiting for a reply right now (not those backing off or queued).
    public var awaitingReplyCount: Int { window.awaiting }

    /// Commands waiting for their turn (pacing), retries included.
    public var queuedCount: Int { pacer.count }

    /// Whether command `name` of meter `id` is pending: sent and not resolved, or waiting for its turn.
    func isPending(_ id: String, _ name: String) -> Bool { window[id, name] != nil || pacer.isQueued(name, of: id) }

    /// Whether any command of meter `id` is pending.
    func hasPending(_ id: String) -> Bool { window.byMeter[id] != nil || pacer.hasQueued(id) }

    /// The earliest moment `tick` has something to do: a reply timeout, the end
    /// of a backoff, the periodic pass. nil while nothing is scheduled (the
    /// internal broker is away, when no timeout counts).
    /// The heap's top may be stale (resolved since): that only makes `tick` come early.
    public var nextDeadline: MonotonicInstant? {
        guard internalConnected else { return nil }
        var next = draining ? nil : nextPassAt
        func consider(_ t: MonotonicInstant) { next = next.map { min($0, t) } ?? t }
        if let top = window.nextDeadline { consider(top) }
        if !draining, hasFreeSlot, let ready = pacer.nextSpacingEnd { consider(ready) }
        return next
    }

    var hasFreeSlot: Bool { options.maxInFlight <= 0 || window.awaiting < options.maxInFlight }

    /// Active alerts, by meter then command.
    public var alerts: [Alert] { meters.alerts }

    /// The planner's local date for `now`, `yyyy-MM-dd`.
    public func today(_ now: Instant) -> String { rule.today(now) }

    /// Digest of the settings the pack's commands send to meter `id`.
    public func digest(for id: String) -> String { rule.digest(for: id) }

    // MARK: Events

    /// The internal broker connected (subscriptions sent) or went away. While it
    /// is away nothing is sent and no timeout counts; when it is back every known
    /// meter gets its chance.
    public mutating func setInternalConnected(_ connected: Bool, now: ConfigTime) -> [Action] {
        guard connected != internalConnected else { return [] }
        internalConnected = connected
        statusVersion += 1
        guard connected else { return [] }
        // Replies to what was in flight may be lost: give every attempt a full timeout again.
        window.rearmAwaiting(until: now.monotonic.adding(seconds: options.replyTimeoutSeconds))
        if nextPassAt == nil { nextPassAt = now.monotonic.adding(seconds: options.periodicPassSeconds) }
        var actions: [Action] = []
        for id in meters.keys.sorted() {
            actions += correctClock(id, now: now)
            actions += evaluate(id, reason: .connected, now: now)
        }
        return actions + dispatch(now: now)
    }

    /// A discovery message for meter `id` (retained ones included). `clockOffsetSeconds`
    /// is the meter's clock minus the true time, when the message reports one.
    public mutating func discovered(_ id: String, clockOffsetSeconds: Int?, now: ConfigTime) -> [Action] {
        guard programs.isValidDeviceID(id) else {
            return [.log(ConfigEvent(.warning, "discovery_ignored", [("meter", id), ("reason", "invalid meter id")]))]
        }
        // An excluded meter is never configured (its retained discovery may
        // outlive the exclusion on the central broker).
        if programs.isExcluded(id) {
            return forget(id, now: now) + [.log(ConfigEvent(.debug, "discovery_ignored", [("meter", id), ("reason", "excluded")]))]
        }
        var actions: [Action] = []
        let seen = meters.discovered(id, clockOffsetSeconds: clockOffsetSeconds, threshold: options.clockSkewThresholdSeconds, at: now.wall)
        if seen.changed { statusVersion += 1 }
        if seen.isNew {
            actions.append(.log(ConfigEvent(.info, "meter_discovered", [("meter", id), ("clock_offset_s", clockOffsetSeconds.map(String.init))])))
        }
        if let offset = clockOffsetSeconds, abs(offset) > options.clockSkewThresholdSeconds { actions += correctClock(id, now: now) }
        actions += evaluate(id, reason: .discovery, now: now)
        return actions
    }

    /// The discovery message of meter `id` was removed (an empty retained message):
    /// it is no longer configured. Its record stays.
    public mutating func forget(_ id: String, now: ConfigTime) -> [Action] {
        guard meters.forget(id) else { return [] }
        let dropped = Set(window.forget(id)).union(pacer.forget(id)).count
        statusVersion += 1
        return [.log(ConfigEvent(.info, "meter_forgotten", [("meter", id), ("pending_dropped", String(dropped))]))]
    }

    /// Timeouts, retries after backoff, and the periodic pass: call it at
    /// `nextDeadline` (calling it more often is harmless).
    public mutating func tick(now: ConfigTime) -> [Action] {
        guard internalConnected else { return [] }
        var actions: [Action] = []
        var due = window.takeDue(now: now.monotonic)
        // Meter, then command order, whatever their deadlines: one tick reads like one pass.
        due.sort { $0.meter == $1.meter ? $0.command < $1.command : $0.meter < $1.meter }
        for p in due {
            if p.awaitingReply {
                actions += timedOut(p, now: now)
            } else if !draining {
                actions += requeue(p, now: now)
            }
        }
        if !draining, let due = nextPassAt, now.monotonic >= due {
            nextPassAt = now.monotonic.adding(seconds: options.periodicPassSeconds)
            actions.append(.log(ConfigEvent(.debug, "periodic_pass", [("meters", String(meters.count))])))
            for id in meters.keys.sorted() { actions += evaluate(id, reason: .periodic, now: now) }
        }
        return actions + dispatch(now: now)
    }

    /// A parsed reply from the internal broker.
    public mutating func reply(_ reply: CommandReply, now: ConfigTime) -> [Action] {
        let p: Pending
        switch window.match(reply) {
        case .ignored(let event): return [.log(event)]
        case .answers(let pending): p = pending
        }
        resolve(p)
        var actions: [Action] = []
        if reply.success, meters.clearAlert(meter: p.meter, command: p.command) {
            actions.append(.log(ConfigEvent(.info, "alert_cleared", [("meter", p.meter), ("command", p.command)])))
        }
        let outcome = CommandOutcome.reply(reply, to: p, date: today(now.wall), at: now.wall)
        actions.append(.log(outcome.event))
        record(outcome, of: p)
        if p.stale { actions += evaluate(p.meter, reason: .configChanged, now: now) }
        actions += acknowledgeIfComplete(p.meter, now: now.wall)
        return actions + dispatch(now: now)
    }

    /// The broker refused a command we published (MQTT 5: not authorised by its
    /// ACL). No reply can come: recorded as a failure at once, retried at the next
    /// opportunity.
    public mutating func publishRefused(operationID: String, reason: String, now: ConfigTime) -> [Action] {
        guard let ref = window.owner(of: operationID), let p = window[ref.meter, ref.command],
              p.message?.operationID == operationID else { return [] }
        resolve(p)
        let outcome = CommandOutcome.refused(p, reason: reason, date: today(now.wall), at: now.wall)
        record(outcome, of: p)
        return [.log(outcome.event)] + dispatch(now: now)
    }

    /// A new programs (config or rules reloaded). Only meters whose effective
    /// settings changed are looked at again.
    public mutating func replace(programs newProgram: ProgramSet, options newOptions: Options, now: ConfigTime) -> [Action] {
        let old = rule
        rule = DailyRule(programs: newProgram)
        // A queued command the new packs no longer have could not be built when its turn came.
        var dropped: [Action] = []
        for (id, name) in pacer.replaceCommandNames(newProgram.commandNames) {
            window.remove(id, name)
            dropped.append(.log(ConfigEvent(.error, "command_not_rendered", [("meter", id), ("command", name)])))
        }
        if newOptions.periodicPassSeconds != options.periodicPassSeconds, nextPassAt != nil {
            nextPassAt = now.monotonic.adding(seconds: newOptions.periodicPassSeconds)
        }
        options = newOptions
        pacer.minSpacingSeconds = newOptions.minSpacingSeconds
        statusVersion += 1
        var excluded: [Action] = []
        for id in meters.keys.sorted() where newProgram.isExcluded(id) {
            excluded += forget(id, now: now)
            excluded.append(.log(ConfigEvent(.info, "meter_excluded", [("meter", id), ("detail", "no longer configured")])))
        }
        let changed = meters.keys.sorted().filter { rule.digest(for: $0) != old.digest(for: $0) }
        for id in changed {
            for (name, p) in window.commands(of: id) where rule.isOutdated(p, now: now.wall) { window.markStale(id, name) }
        }
        var actions: [Action] = dropped + excluded + [.log(ConfigEvent(.info, "config_reloaded", [
            ("changed_meters", String(changed.count)), ("meters", changed.isEmpty ? nil : changed.joined(separator: ",")),
        ]))]
        for id in changed { actions += evaluate(id, reason: .configChanged, now: now) }
        return actions + dispatch(now: now)
    }

    /// Stop sending: no new commands, no retries, no periodic pass; replies are still taken.
    public mutating func drain() {
        draining = true
        statusVersion += 1
    }

    // MARK: Decisions

    /// Sends meter `id` every command it still needs today that is not already in flight.
    mutating func evaluate(_ id: String, reason: CommandReason, now: ConfigTime) -> [Action] {
        guard internalConnected, !draining, meters[id] != nil else { return [] }
        let needed = rule.needed(by: id, record: records[id], isBusy: { isPending(id, $0) }, now: now.wall)
        guard !needed.isEmpty else { return acknowledgeIfComplete(id, now: now.wall) }
        var actions: [Action] = [.log(ConfigEvent(.info, "configuring", [
            ("meter", id), ("reason", reason.name), ("commands", needed.joined(separator: ",")),
        ]))]
        for name in needed { actions += send(name, to: id, reason: reason, now: now) }
        return actions
    }

    /// Sends the clock command for a reported offset, unless one went out within
    /// the correction interval (then the report is dropped: the meter's next
    /// discovery message tells whether it is still off).
    mutating func correctClock(_ id: String, now: ConfigTime) -> [Action] {
        guard internalConnected, !draining, meters[id]?.clockOffsetToCorrect != nil,
              let clock = programs.commandNames.first(where: programs.isClockCommand), let offset = meters.takeClockOffset(id) else { return [] }
        guard !isPending(id, clock) else { return [] }
        if let last = records[id]?.lastClockSentAt,
           Double(now.wall.epochMillis - last) < options.clockCorrectionIntervalSeconds * 1000 {
            return [.log(ConfigEvent(.debug, "clock_correction_skipped", [("meter", id), ("clock_offset_s", String(offset)),
                                                                          ("reason", "clock set within the last hour")]))]
        }
        return [.log(ConfigEvent(.info, "clock_offset", [("meter", id), ("clock_offset_s", String(offset)),
                                                         ("threshold_s", String(options.clockSkewThresholdSeconds))]))]
            + send(clock, to: id, reason: .clockOffset, now: now)
    }

    /// Queues command `name` for meter `id`, and sends what pacing allows now.
    /// Only its name and reason wait: the message (its oprid, the clock's
    /// time) is built when it leaves.
    mutating func send(_ name: String, to id: String, reason: CommandReason, now: ConfigTime) -> [Action] {
        guard programs.renderCommand(name, for: id, operationID: "", now: now.wall) != nil,
              pacer.enqueue(name, for: id, reason: reason, first: false, now: now.monotonic) else {
            return [.log(ConfigEvent(.error, "command_not_rendered", [("meter", id), ("command", name)]))]
        }
        statusVersion += 1
        return dispatch(now: now)
    }

    /// A backoff ended: the command waits for its turn again, ahead of new meters.
    mutating func requeue(_ old: Pending, now: ConfigTime) -> [Action] {
        guard pacer.enqueue(old.command, for: old.meter, reason: old.reason, first: true, now: now.monotonic) else {
            window.remove(old.meter, old.command)  // the packs no longer have it
            return [.log(ConfigEvent(.error, "command_not_rendered", [("meter", old.meter), ("command", old.command)]))]
        }
        window.queue(old)
        statusVersion += 1
        return dispatch(now: now)
    }

    /// Sends queued commands while a slot is free, in the pacer's order.
    mutating func dispatch(now: ConfigTime) -> [Action] {
        guard internalConnected, !draining else { return [] }
        var actions: [Action] = []
        while hasFreeSlot, let (id, name, reason) = pacer.next(now: now.monotonic) {
            actions += transmit(name, to: id, reason: reason, now: now)
        }
        window.purgeStaleDeadlines()
        return actions
    }

    /// Sends command `name` of meter `id`, just taken from its queue, with a
    /// fresh oprid: its message is built now.
    mutating func transmit(_ name: String, to id: String, reason: CommandReason, now: ConfigTime) -> [Action] {
        if let p = window[id, name], !p.queued { return [] }  // in flight already
        let oprid = ids.make(length: programs.operationIDLength ?? 32)
        // A clock command carries the time it leaves, also on a retry.
        guard let message = programs.renderCommand(name, for: id, operationID: oprid, now: now.wall) else {
            window.remove(id, name)
            return [.log(ConfigEvent(.error, "command_not_rendered", [("meter", id), ("command", name)]))]
        }
        window.sent(id, name, message: message, reason: reason, until: now.monotonic.adding(seconds: options.replyTimeoutSeconds))
        pacer.sent(id, at: now.monotonic)
        if programs.isClockCommand(name) { setRecord(id) { $0.lastClockSentAt = now.wall.epochMillis } }
        statusVersion += 1
        return [.send(message), .log(window[id, name]!.sentEvent)]
    }

    /// No reply to `p` in time: a retry after a backoff, or an alert once the retries are spent.
    mutating func timedOut(_ p: Pending, now: ConfigTime) -> [Action] {
        if p.attempt <= options.retries {
            let delay = min(options.backoffBaseSeconds * Double(1 << min(p.attempt - 1, 20)), options.backoffMaxSeconds)
            window.backOff(p.meter, p.command, until: now.monotonic.adding(seconds: delay))
            statusVersion += 1
            return [.log(p.timeoutEvent(retryIn: delay))]
        }
        // Every attempt went unanswered. Late replies to them are no longer awaited.
        window.remove(p.meter, p.command)
        let outcome = CommandOutcome.noReply(p, firstTime: meters[p.meter]?.alerts[p.command] == nil, date: today(now.wall), at: now.wall)
        record(outcome, of: p)
        meters.raise(Alert(meter: p.meter, command: p.command, since: now.wall.epochMillis, message: outcome.result.message ?? ""), renew: false)
        return [.log(outcome.event)]
    }

    /// Records the meter as acknowledged today once every command is satisfied.
    mutating func acknowledgeIfComplete(_ id: String, now: Instant) -> [Action] {
        guard meters[id] != nil, !hasPending(id) else { return [] }
        guard let record = rule.acknowledged(id, record: records[id], now: now) else { return [] }
        setRecord(id) { $0 = record }
        return [.log(ConfigEvent(.info, "meter_configured", [
            ("meter", id), ("date", record.acknowledgedDate), ("digest", record.digest),
            ("settings", programs.effectiveSettings(for: id).map { "\($0.name)=\($0.value)" }.joined(separator: ",")),
        ]))]
    }

    // MARK: Helpers

    /// Pending command `p` was resolved: out of the window, and out of the queue if it waited there (a retry).
    mutating func resolve(_ p: Pending) {
        window.remove(p.meter, p.command)
        if p.queued { pacer.remove(p.command, of: p.meter) }
    }

    /// Writes how pending command `p` ended into its meter's record.
    mutating func record(_ outcome: CommandOutcome, of p: Pending) {
        setRecord(p.meter) { record in
            record.commands[p.command] = outcome.result
            if let error = outcome.lastError { record.lastError = error }
        }
    }

    /// Changes meter `id`'s record (the status shows it).
    mutating func setRecord(_ id: String, _ change: (inout MeterRecord) -> Void) {
        if book.update(id, change) { statusVersion += 1 }
    }

    /// Whether some record changed since the last `takeUnsaved`.
    public var hasUnsaved: Bool { book.hasUnsaved }

    /// The records changed since the last call, for the state database.
    public mutating func takeUnsaved() -> [(key: String, change: MeterRecordChange)] { book.takeUnsaved() }
}
