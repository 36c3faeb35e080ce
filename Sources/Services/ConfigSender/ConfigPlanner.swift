import Clock
import RuleEngine
import SiteSettings

/// The config sender's decisions, as a pure state machine.
///
/// Events go in (a meter discovered, a reply, a tick of the clock, a new
/// program, the internal broker coming or going); actions come out (commands
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
/// A command does not go out the moment it is decided: it is queued, and
/// sent when fewer than `maxInFlight` commands await a reply and the meter's
/// previous command left at least `minSpacingSeconds` ago. A meter that has
/// begun is finished first (its next command goes before new meters'), and
/// retries go before new meters too. The reply timeout starts when a command
/// is sent, so a burst of 10,000 discoveries waits in the queue, not in the
/// timeouts. Without limits (both 0) every command goes out at once.
///
/// A value with no locks: `ConfigSenderCore` owns it on the service's loop
/// thread and runs the returned actions. `nextDeadline` tells it when `tick`
/// has something to do, so nothing polls.
public struct ConfigPlanner: Sendable {
    public struct Options: Sendable, Equatable {
        /// How long to wait for a reply before a retry.
        public var replyTimeoutSeconds: Double
        /// Retries after the first attempt, when no reply comes.
        public var retries: Int
        /// The n-th retry waits `backoffBaseSeconds · 2^(n-1)` (at most `backoffMaxSeconds`) after its timeout.
        public var backoffBaseSeconds: Double
        public var backoffMaxSeconds: Double
        /// How often every known meter is checked.
        public var periodicPassSeconds: Double
        /// A discovery clock offset beyond this (in seconds, either way) sets the clock at once.
        public var clockSkewThresholdSeconds: Int
        /// At most one such clock correction per meter in this time.
        public var clockCorrectionIntervalSeconds: Double
        /// Shifts the planner's notion of today by whole days (testing only; the clock sent stays true).
        public var dayOffset: Int
        /// Commands awaiting a reply at once, all meters together; more wait their turn. 0: no limit.
        public var maxInFlight: Int
        /// At least this long between two commands to one meter. 0: none.
        public var minSpacingSeconds: Double

        public init(replyTimeoutSeconds: Double = 15, retries: Int = 3, backoffBaseSeconds: Double? = nil,
                    backoffMaxSeconds: Double = 300, periodicPassSeconds: Double = 600,
                    clockSkewThresholdSeconds: Int = 300, clockCorrectionIntervalSeconds: Double = 3600, dayOffset: Int = 0,
                    maxInFlight: Int = 0, minSpacingSeconds: Double = 0) {
            self.replyTimeoutSeconds = replyTimeoutSeconds
            self.retries = retries
            self.backoffBaseSeconds = backoffBaseSeconds ?? replyTimeoutSeconds / 2
            self.backoffMaxSeconds = backoffMaxSeconds
            self.periodicPassSeconds = periodicPassSeconds
            self.clockSkewThresholdSeconds = clockSkewThresholdSeconds
            self.clockCorrectionIntervalSeconds = clockCorrectionIntervalSeconds
            self.dayOffset = dayOffset
            self.maxInFlight = maxInFlight
            self.minSpacingSeconds = minSpacingSeconds
        }

        /// The site's `config_sender` and `proxy.clock_skew_threshold_s` settings.
        public init(site: Site, dayOffset: Int = 0) {
            let sender = site.settings.configSender
            self.init(replyTimeoutSeconds: sender.replyTimeoutSeconds, retries: sender.retries,
                      periodicPassSeconds: Double(sender.periodicPassSeconds),
                      clockSkewThresholdSeconds: site.programs.siteConfig.clockSkewThresholdSeconds, dayOffset: dayOffset,
                      maxInFlight: sender.maxInFlight, minSpacingSeconds: Double(sender.minSpacingMilliseconds) / 1000)
        }
    }

    public enum Action: Sendable, Equatable {
        /// Publish with QoS 1 to the internal broker.
        case send(CommandMessage)
        case log(ConfigEvent)
    }

    /// A command sent and not yet resolved.
    public struct Pending: Sendable, Equatable {
        public var meter: String
        public var command: String
        /// The last message sent (its `operationID` is the newest).
        public var message: CommandMessage
        /// Every oprid sent for this command: a late reply to an earlier attempt still counts.
        public var operationIDs: [String]
        /// Sends so far (1 = the first attempt; 0 = queued, never sent).
        public var attempt: Int
        /// true: waiting for a reply until `until`; false: backing off until `until`, or queued.
        public var awaitingReply: Bool
        /// On the monotonic clock: a wall-clock jump neither fires nor postpones it.
        public var until: MonotonicInstant
        public var reason: String
        /// The effective config changed while it was in flight: look again when it resolves.
        var stale = false
        /// Waiting for its turn (pacing): not sent yet, no deadline; `message` is a preview.
        public internal(set) var queued = false
        /// Names this `until` in the deadline heap; a heap entry with another stamp is stale.
        var stamp = 0
    }

    /// An unresolved timeout: a meter that did not answer any attempt of a command.
    public struct Alert: Sendable, Equatable {
        public var meter: String
        public var command: String
        public var since: Int64
        public var message: String
    }

    struct Meter: Sendable {
        var discoveredAt: Int64
        /// A clock offset beyond the threshold, reported while no clock command could go out yet.
        var clockOffsetToCorrect: Int?
        /// What the meter's discovery message reports now (nil: within the threshold).
        var reportedClockOffset: Int?
        var pending: [String: Pending] = [:]
        var alerts: [String: Alert] = [:]
        /// Queued commands in sending order (names; a resolved one is skipped).
        var queue: [String] = []
        /// Non-zero while the meter waits in a line (`fresh`, `resumed`, `spacing`):
        /// an entry with another ticket is stale.
        var ticket = 0
        var lastSentAt: MonotonicInstant?
    }

    /// Every pack's program; each meter's commands come from its own pack.
    public private(set) var program: ProgramSet
    public private(set) var options: Options
    /// What the state file holds, by meter id.
    public private(set) var records: [String: MeterRecord]
    /// The records changed since they were last handed to the state database (`takeUnsaved`).
    private(set) var unsaved: [String: MeterRecordChange] = [:]
    /// Bumped on every change the status shows.
    public internal(set) var statusVersion = 0
    /// Whether commands may go out (the internal broker is connected).
    public private(set) var internalConnected = false
    /// Set by `drain()`: nothing new is sent, only replies are taken.
    public private(set) var draining = false

    var meters: [String: Meter] = [:]
    /// oprid → (meter, command) for every attempt of every pending command.
    var operations: [String: (meter: String, command: String)] = [:]
    var ids: OperationIDGenerator
    /// On the monotonic clock, like every deadline here.
    var nextPassAt: MonotonicInstant?
    /// Commands sent and awaiting a reply.
    var awaiting = 0
    /// Pacing lines (meter id, ticket): meters new to the queue; meters that
    /// already began or retry (served first); meters waiting out their spacing,
    /// in the order they become ready.
    var fresh = FIFO<(meter: String, ticket: Int)>()
    var resumed = FIFO<(meter: String, ticket: Int)>()
    var spacing = FIFO<(at: MonotonicInstant, meter: String, ticket: Int)>()
    var nextTicket = 1
    /// Every reply timeout and backoff end; stale entries are dropped when met.
    var deadlines = DeadlineHeap()
    var nextStamp = 1

    public init(program: Program, options: Options, records: [String: MeterRecord] = [:], ids: OperationIDGenerator = OperationIDGenerator()) {
        self.init(programs: ProgramSet(single: program), options: options, records: records, ids: ids)
    }

    public init(programs program: ProgramSet, options: Options, records: [String: MeterRecord] = [:], ids: OperationIDGenerator = OperationIDGenerator()) {
        self.program = program
        self.options = options
        self.records = records
        self.ids = ids
    }

    // MARK: Queries

    /// Meter ids known from discovery, sorted.
    public var knownMeters: [String] { meters.keys.sorted() }

    /// Every pending command, by meter then pack order.
    public var pending: [Pending] {
        meters.keys.sorted().flatMap { id in
            program.commandNames.compactMap { meters[id]!.pending[$0] } +
                meters[id]!.pending.values.filter { !program.commandNames.contains($0.command) }
        }
    }

    /// Commands waiting for a reply right now (not those backing off or queued).
    public var awaitingReplyCount: Int { awaiting }

    /// Commands waiting for their turn (pacing).
    public var queuedCount: Int {
        meters.values.reduce(0) { $0 + $1.pending.values.filter(\.queued).count }
    }

    /// The earliest moment `tick` has something to do: a reply timeout, the end
    /// of a backoff, the periodic pass. nil while nothing is scheduled (the
    /// internal broker is away, when no timeout counts).
    /// The heap's top may be stale (resolved since): that only makes `tick` come early.
    public var nextDeadline: MonotonicInstant? {
        guard internalConnected else { return nil }
        var next = draining ? nil : nextPassAt
        func consider(_ t: MonotonicInstant) { next = next.map { min($0, t) } ?? t }
        if let top = deadlines.top { consider(top.until) }
        if !draining, hasFreeSlot, let waiting = spacing.first { consider(waiting.at) }
        return next
    }

    var hasFreeSlot: Bool { options.maxInFlight <= 0 || awaiting < options.maxInFlight }

    /// Active alerts, by meter then command.
    public var alerts: [Alert] {
        meters.keys.sorted().flatMap { id in meters[id]!.alerts.keys.sorted().map { meters[id]!.alerts[$0]! } }
    }

    /// The planner's local date for `now`, `yyyy-MM-dd`.
    public func today(_ now: Instant) -> String {
        ConfigPlanner.dateFormat.render(now.adding(seconds: Double(options.dayOffset) * 86400))
    }

    /// Digest of the settings the pack's commands send to meter `id`.
    public func digest(for id: String) -> String { ConfigPlanner.digest(program.effectiveSettings(for: id)) }

    /// Whether command `name` of meter `id` already succeeded today with the value it should have.
    public func isSatisfied(_ name: String, for id: String, now: Instant) -> Bool {
        guard let result = records[id]?.commands[name], result.outcome == .success, result.date == today(now) else { return false }
        if program.isClockCommand(name) { return true }
        return result.value == expectedValue(name, for: id, now: now)
    }

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
        for id in meters.keys {
            for name in meters[id]!.pending.keys where meters[id]!.pending[name]!.awaitingReply {
                arm(id, name, until: now.monotonic.adding(seconds: options.replyTimeoutSeconds))
            }
        }
        if nextPassAt == nil { nextPassAt = now.monotonic.adding(seconds: options.periodicPassSeconds) }
        var actions: [Action] = []
        for id in meters.keys.sorted() {
            actions += correctClock(id, now: now)
            actions += evaluate(id, reason: "connected", now: now)
        }
        return actions + dispatch(now: now)
    }

    /// A discovery message for meter `id` (retained ones included). `clockOffsetSeconds`
    /// is the meter's clock minus the true time, when the message reports one.
    public mutating func discovered(_ id: String, clockOffsetSeconds: Int?, now: ConfigTime) -> [Action] {
        guard program.isValidDeviceID(id) else {
            return [.log(ConfigEvent(.warning, "discovery_ignored", [("meter", id), ("reason", "invalid meter id")]))]
        }
        // An excluded meter is never configured (its retained discovery may
        // outlive the exclusion on the central broker).
        if program.isExcluded(id) {
            return forget(id, now: now) + [.log(ConfigEvent(.debug, "discovery_ignored", [("meter", id), ("reason", "excluded")]))]
        }
        var actions: [Action] = []
        if meters[id] == nil {
            meters[id] = Meter(discoveredAt: now.wall.epochMillis)
            statusVersion += 1
            actions.append(.log(ConfigEvent(.info, "meter_discovered", [("meter", id), ("clock_offset_s", clockOffsetSeconds.map(String.init))])))
        }
        let reported = clockOffsetSeconds.flatMap { abs($0) > options.clockSkewThresholdSeconds ? $0 : nil }
        if meters[id]!.reportedClockOffset != reported {
            meters[id]!.reportedClockOffset = reported
            statusVersion += 1
        }
        if let offset = clockOffsetSeconds, abs(offset) > options.clockSkewThresholdSeconds {
            meters[id]!.clockOffsetToCorrect = offset
            actions += correctClock(id, now: now)
        }
        actions += evaluate(id, reason: "discovery", now: now)
        return actions
    }

    /// The discovery message of meter `id` was removed (an empty retained message):
    /// it is no longer configured. Its record stays.
    public mutating func forget(_ id: String, now: ConfigTime) -> [Action] {
        guard let meter = meters.removeValue(forKey: id) else { return [] }
        for pending in meter.pending.values { for op in pending.operationIDs { operations[op] = nil } }
        awaiting -= meter.pending.values.filter(\.awaitingReply).count
        statusVersion += 1
        return [.log(ConfigEvent(.info, "meter_forgotten", [("meter", id), ("pending_dropped", String(meter.pending.count))]))]
    }

    /// Timeouts, retries after backoff, and the periodic pass: call it at
    /// `nextDeadline` (calling it more often is harmless).
    public mutating func tick(now: ConfigTime) -> [Action] {
        guard internalConnected else { return [] }
        var actions: [Action] = []
        var due: [Pending] = []
        while let top = deadlines.top, now.monotonic >= top.until {
            deadlines.pop()
            guard let p = meters[top.meter]?.pending[top.command], p.stamp == top.stamp, !p.queued else { continue }
            due.append(p)
        }
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
            for id in meters.keys.sorted() { actions += evaluate(id, reason: "periodic", now: now) }
        }
        return actions + dispatch(now: now)
    }

    /// A parsed reply from the internal broker.
    public mutating func reply(_ reply: CommandReply, now: ConfigTime) -> [Action] {
        guard let ref = operations[reply.operationID], var p = meters[ref.meter]?.pending[ref.command] else {
            operations[reply.operationID] = nil
            return [.log(ConfigEvent(.debug, "reply_ignored", [("reason", "unknown oprid"), ("oprid", reply.operationID),
                                                                 ("meter", reply.deviceID), ("topic", reply.topic)]))]
        }
        if let device = reply.deviceID, device != ref.meter {
            return [.log(ConfigEvent(.warning, "reply_ignored", [("reason", "oprid belongs to another meter"), ("oprid", reply.operationID),
                                                                   ("meter", device), ("expected", ref.meter)]))]
        }
        guard reply.commands.contains(ref.command) else {
            return [.log(ConfigEvent(.warning, "reply_ignored", [("reason", "reply topic does not answer this command"),
                                                                   ("oprid", reply.operationID), ("topic", reply.topic), ("command", ref.command)]))]
        }
        for op in p.operationIDs { operations[op] = nil }
        meters[ref.meter]!.pending[ref.command] = nil
        if p.awaitingReply { awaiting -= 1 }
        p.message.operationID = reply.operationID
        var actions: [Action] = []
        let date = today(now.wall)
        var record = records[ref.meter] ?? MeterRecord()
        let result = CommandResult(outcome: reply.success ? .success : .failure, value: p.message.value, date: date,
                                   at: now.wall.epochMillis, operationID: reply.operationID, message: reply.message)
        record.commands[ref.command] = result
        if reply.success {
            if meters[ref.meter]!.alerts.removeValue(forKey: ref.command) != nil {
                actions.append(.log(ConfigEvent(.info, "alert_cleared", [("meter", ref.meter), ("command", ref.command)])))
            }
            actions.append(.log(ConfigEvent(.info, "command_acknowledged", [
                ("meter", ref.meter), ("command", ref.command), ("value", p.message.value), ("oprid", reply.operationID),
                ("attempt", String(p.attempt)),
            ])))
        } else {
            record.lastError = "\(ref.command) failed: \(reply.message ?? "no reason given")"
            actions.append(.log(ConfigEvent(.warning, "command_failed", [
                ("meter", ref.meter), ("command", ref.command), ("value", p.message.value), ("oprid", reply.operationID),
                ("msg", reply.message), ("next", "next opportunity"),
            ])))
        }
        setRecord(record, for: ref.meter)
        if p.stale { actions += evaluate(ref.meter, reason: "config_changed", now: now) }
        actions += acknowledgeIfComplete(ref.meter, now: now.wall)
        return actions + dispatch(now: now)
    }

    /// The broker refused a command we published (MQTT 5: not authorised by its
    /// ACL). No reply can come: recorded as a failure at once, retried at the next
    /// opportunity.
    public mutating func publishRefused(operationID: String, reason: String, now: ConfigTime) -> [Action] {
        guard let ref = operations[operationID], let p = meters[ref.meter]?.pending[ref.command],
              p.message.operationID == operationID else { return [] }
        for op in p.operationIDs { operations[op] = nil }
        meters[ref.meter]!.pending[ref.command] = nil
        if p.awaitingReply { awaiting -= 1 }
        let message = "the broker refused \(ref.command): \(reason)"
        var record = records[ref.meter] ?? MeterRecord()
        record.commands[ref.command] = CommandResult(outcome: .failure, value: p.message.value, date: today(now.wall),
                                                     at: now.wall.epochMillis, operationID: operationID, message: message)
        record.lastError = message
        setRecord(record, for: ref.meter)
        return [.log(ConfigEvent(.error, "command_refused", [
            ("meter", ref.meter), ("command", ref.command), ("topic", p.message.topic), ("reason", reason),
            ("hint", "check the internal broker's ACL for this service's account"), ("next", "next opportunity"),
        ]))] + dispatch(now: now)
    }

    /// A new program (config or rules reloaded). Only meters whose effective
    /// settings changed are looked at again.
    public mutating func replace(program newProgram: Program, options newOptions: Options, now: ConfigTime) -> [Action] {
        replace(programs: ProgramSet(single: newProgram), options: newOptions, now: now)
    }

    public mutating func replace(programs newProgram: ProgramSet, options newOptions: Options, now: ConfigTime) -> [Action] {
        let old = program
        program = newProgram
        if newOptions.periodicPassSeconds != options.periodicPassSeconds, nextPassAt != nil {
            nextPassAt = now.monotonic.adding(seconds: newOptions.periodicPassSeconds)
        }
        options = newOptions
        statusVersion += 1
        var excluded: [Action] = []
        for id in meters.keys.sorted() where newProgram.isExcluded(id) {
            excluded += forget(id, now: now)
            excluded.append(.log(ConfigEvent(.info, "meter_excluded", [("meter", id), ("detail", "no longer configured")])))
        }
        var changed: [String] = []
        for id in meters.keys.sorted() {
            let before = old.effectiveSettings(for: id), after = newProgram.effectiveSettings(for: id)
            guard ConfigPlanner.digest(before) != ConfigPlanner.digest(after) else { continue }
            changed.append(id)
            for name in meters[id]!.pending.keys {
                let p = meters[id]!.pending[name]!
                if !newProgram.isClockCommand(name), p.message.value != expectedValue(name, for: id, now: now.wall) {
                    meters[id]!.pending[name]!.stale = true
                }
            }
        }
        var actions: [Action] = excluded + [.log(ConfigEvent(.info, "config_reloaded", [
            ("changed_meters", String(changed.count)), ("meters", changed.isEmpty ? nil : changed.joined(separator: ",")),
        ]))]
        for id in changed { actions += evaluate(id, reason: "config_changed", now: now) }
        return actions + dispatch(now: now)
    }

    /// Stop sending: no new commands, no retries, no periodic pass; replies are still taken.
    public mutating func drain() {
        draining = true
        statusVersion += 1
    }

    // MARK: Decisions

    /// Sends meter `id` every command it still needs today that is not already in flight.
    mutating func evaluate(_ id: String, reason: String, now: ConfigTime) -> [Action] {
        guard internalConnected, !draining, let meter = meters[id] else { return [] }
        let needed = program.commandNames.filter { name in
            meter.pending[name] == nil && expectedValue(name, for: id, now: now.wall) != nil && !isSatisfied(name, for: id, now: now.wall)
        }
        guard !needed.isEmpty else { return acknowledgeIfComplete(id, now: now.wall) }
        var actions: [Action] = [.log(ConfigEvent(.info, "configuring", [
            ("meter", id), ("reason", reason), ("commands", needed.joined(separator: ",")),
        ]))]
        for name in needed { actions += send(name, to: id, reason: reason, now: now) }
        return actions
    }

    /// Sends the clock command for a reported offset, unless one went out within
    /// the correction interval (then the report is dropped: the meter's next
    /// discovery message tells whether it is still off).
    mutating func correctClock(_ id: String, now: ConfigTime) -> [Action] {
        guard internalConnected, !draining, let offset = meters[id]?.clockOffsetToCorrect,
              let clock = program.commandNames.first(where: program.isClockCommand) else { return [] }
        meters[id]!.clockOffsetToCorrect = nil
        guard meters[id]!.pending[clock] == nil else { return [] }
        if let last = records[id]?.lastClockSentAt,
           Double(now.wall.epochMillis - last) < options.clockCorrectionIntervalSeconds * 1000 {
            return [.log(ConfigEvent(.debug, "clock_correction_skipped", [("meter", id), ("clock_offset_s", String(offset)),
                                                                          ("reason", "clock set within the last hour")]))]
        }
        return [.log(ConfigEvent(.info, "clock_offset", [("meter", id), ("clock_offset_s", String(offset)),
                                                         ("threshold_s", String(options.clockSkewThresholdSeconds))]))]
            + send(clock, to: id, reason: "clock_offset", now: now)
    }

    /// Queues command `name` for meter `id`, and sends what pacing allows now.
    mutating func send(_ name: String, to id: String, reason: String, now: ConfigTime) -> [Action] {
        // A preview: the real message (its oprid, the clock's time) is made when it leaves.
        guard let preview = program.renderCommand(name, for: id, operationID: "", now: now.wall) else {
            return [.log(ConfigEvent(.error, "command_not_rendered", [("meter", id), ("command", name)]))]
        }
        let p = Pending(meter: id, command: name, message: preview, operationIDs: [], attempt: 0, awaitingReply: false,
                        until: now.monotonic, reason: reason)
        enqueue(p, first: false, now: now)
        return dispatch(now: now)
    }

    /// A backoff ended: the command waits for its turn again, ahead of new meters.
    mutating func requeue(_ old: Pending, now: ConfigTime) -> [Action] {
        enqueue(old, first: true, now: now)
        return dispatch(now: now)
    }

    /// Puts `p` in its meter's queue and the meter in a line unless it is in one.
    /// `first`: the meter goes with those served before new meters.
    mutating func enqueue(_ pending: Pending, first: Bool, now: ConfigTime) {
        var p = pending
        p.queued = true
        p.awaitingReply = false
        let id = p.meter
        meters[id]!.pending[p.command] = p
        meters[id]!.queue.append(p.command)
        statusVersion += 1
        guard meters[id]!.ticket == 0 else { return }
        let ticket = nextTicket
        nextTicket += 1
        meters[id]!.ticket = ticket
        if let last = meters[id]!.lastSentAt, options.minSpacingSeconds > 0,
           now.monotonic < last.adding(seconds: options.minSpacingSeconds) {
            spacing.append((last.adding(seconds: options.minSpacingSeconds), id, ticket))
        } else if first {
            resumed.append((id, ticket))
        } else {
            fresh.append((id, ticket))
        }
    }

    /// Sends queued commands while a slot is free: meters whose spacing has
    /// passed first, then meters in the order they were queued.
    mutating func dispatch(now: ConfigTime) -> [Action] {
        guard internalConnected, !draining else { return [] }
        var actions: [Action] = []
        while let waiting = spacing.first, now.monotonic >= waiting.at {
            _ = spacing.popFirst()
            resumed.append((waiting.meter, waiting.ticket))
        }
        while hasFreeSlot {
            guard let (id, ticket) = resumed.popFirst() ?? fresh.popFirst() else { break }
            guard meters[id]?.ticket == ticket else { continue }  // forgotten, or lined up again since
            while let name = meters[id]!.queue.first {
                meters[id]!.queue.removeFirst()
                // Resolved while queued (a late reply to an earlier attempt): skipped.
                guard meters[id]!.pending[name]?.queued == true else { continue }
                actions += transmit(name, to: id, now: now)
                break
            }
            if meters[id]!.queue.isEmpty {
                meters[id]!.ticket = 0
            } else if options.minSpacingSeconds > 0 {
                spacing.append((now.monotonic.adding(seconds: options.minSpacingSeconds), id, ticket))
            } else {
                resumed.append((id, ticket))
            }
        }
        purgeStaleDeadlines()
        return actions
    }

    /// Sends queued command `name` to meter `id` with a fresh oprid.
    mutating func transmit(_ name: String, to id: String, now: ConfigTime) -> [Action] {
        guard var p = meters[id]?.pending[name], p.queued else { return [] }
        let oprid = ids.make(length: program.operationIDLength ?? 32)
        // A clock command carries the time it leaves, also on a retry.
        guard let message = program.renderCommand(name, for: id, operationID: oprid, now: now.wall) else {
            for op in p.operationIDs { operations[op] = nil }
            meters[id]!.pending[name] = nil
            return [.log(ConfigEvent(.error, "command_not_rendered", [("meter", id), ("command", name)]))]
        }
        p.message = message
        p.operationIDs.append(oprid)
        p.attempt += 1
        p.awaitingReply = true
        p.queued = false
        meters[id]!.pending[name] = p
        arm(id, name, until: now.monotonic.adding(seconds: options.replyTimeoutSeconds))
        operations[oprid] = (id, name)
        awaiting += 1
        meters[id]!.lastSentAt = now.monotonic
        noteClockSent(name, id, now.wall)
        statusVersion += 1
        return [.send(message), .log(sentEvent(meters[id]!.pending[name]!))]
    }

    /// Sets the deadline of pending command `name` of meter `id` and records it in the heap.
    mutating func arm(_ id: String, _ name: String, until: MonotonicInstant) {
        let stamp = nextStamp
        nextStamp += 1
        meters[id]!.pending[name]!.until = until
        meters[id]!.pending[name]!.stamp = stamp
        deadlines.push(DeadlineHeap.Entry(until: until, meter: id, command: name, stamp: stamp))
    }

    /// Drops resolved entries from the top of the heap, so `nextDeadline` is exact most of the time.
    mutating func purgeStaleDeadlines() {
        while let top = deadlines.top {
            if let p = meters[top.meter]?.pending[top.command], p.stamp == top.stamp, !p.queued { return }
            deadlines.pop()
        }
    }

    mutating func timedOut(_ old: Pending, now: ConfigTime) -> [Action] {
        var p = old
        awaiting -= 1
        if p.attempt <= options.retries {
            let delay = min(options.backoffBaseSeconds * Double(1 << min(p.attempt - 1, 20)), options.backoffMaxSeconds)
            p.awaitingReply = false
            meters[p.meter]!.pending[p.command] = p
            arm(p.meter, p.command, until: now.monotonic.adding(seconds: delay))
            statusVersion += 1
            return [.log(ConfigEvent(.warning, "reply_timeout", [
                ("meter", p.meter), ("command", p.command), ("oprid", p.message.operationID), ("attempt", String(p.attempt)),
                ("retry_in_s", format(delay)),
            ]))]
        }
        // Every attempt went unanswered. Late replies to them are no longer awaited.
        for op in p.operationIDs { operations[op] = nil }
        meters[p.meter]!.pending[p.command] = nil
        let message = "no reply to \(p.command) after \(p.attempt) attempts"
        var record = records[p.meter] ?? MeterRecord()
        record.commands[p.command] = CommandResult(outcome: .timeout, value: p.message.value, date: today(now.wall), at: now.wall.epochMillis,
                                                   operationID: p.message.operationID, message: message)
        record.lastError = message
        setRecord(record, for: p.meter)
        let fields: [(String, String?)] = [("meter", p.meter), ("command", p.command), ("attempts", String(p.attempt)),
                                           ("message", message), ("next", "next opportunity")]
        if meters[p.meter]!.alerts[p.command] == nil {
            meters[p.meter]!.alerts[p.command] = Alert(meter: p.meter, command: p.command, since: now.wall.epochMillis, message: message)
            return [.log(ConfigEvent(.alert, "meter_not_answering", fields))]
        }
        return [.log(ConfigEvent(.warning, "meter_still_not_answering", fields))]
    }

    /// Records the meter as acknowledged today once every command is satisfied.
    mutating func acknowledgeIfComplete(_ id: String, now: Instant) -> [Action] {
        guard let meter = meters[id], meter.pending.isEmpty else { return [] }
        let commands = program.commandNames.filter { expectedValue($0, for: id, now: now) != nil }
        guard commands.allSatisfy({ isSatisfied($0, for: id, now: now) }) else { return [] }
        let date = today(now), digest = digest(for: id)
        var record = records[id] ?? MeterRecord()
        guard record.digest != digest || record.acknowledgedDate != date || record.lastError != nil else { return [] }
        record.digest = digest
        record.settings = Dictionary(uniqueKeysWithValues: program.effectiveSettings(for: id).map { ($0.name, $0.value) })
        record.acknowledgedDate = date
        record.acknowledgedAt = now.epochMillis
        record.lastError = nil
        setRecord(record, for: id)
        return [.log(ConfigEvent(.info, "meter_configured", [
            ("meter", id), ("date", date), ("digest", digest),
            ("settings", program.effectiveSettings(for: id).map { "\($0.name)=\($0.value)" }.joined(separator: ",")),
        ]))]
    }

    // MARK: Helpers

    /// The value command `name` would carry for meter `id`; nil when it cannot be sent
    /// (a setting without a value). For the clock: the time now.
    func expectedValue(_ name: String, for id: String, now: Instant) -> String? {
        program.renderCommand(name, for: id, operationID: "", now: now)?.value
    }

    mutating func noteClockSent(_ name: String, _ id: String, _ now: Instant) {
        guard program.isClockCommand(name) else { return }
        var record = records[id] ?? MeterRecord()
        record.lastClockSentAt = now.epochMillis
        setRecord(record, for: id)
    }

    mutating func setRecord(_ record: MeterRecord, for id: String) {
        let old = records[id]
        guard old != record else { return }
        records[id] = record
        let change = MeterRecordChange(from: old, to: record)
        if unsaved[id] != nil { unsaved[id]!.merge(change) } else { unsaved[id] = change }
        statusVersion += 1
    }

    /// Whether some record changed since the last `takeUnsaved`.
    public var hasUnsaved: Bool { !unsaved.isEmpty }

    /// The records changed since the last call, for the state database.
    public mutating func takeUnsaved() -> [(key: String, change: MeterRecordChange)] {
        defer { unsaved.removeAll() }
        return unsaved.map { ($0.key, $0.value) }
    }

    func sentEvent(_ p: Pending) -> ConfigEvent {
        ConfigEvent(.info, "command_sent", [
            ("meter", p.meter), ("command", p.command), ("value", p.message.value), ("topic", p.message.topic),
            ("oprid", p.message.operationID), ("attempt", String(p.attempt)), ("reason", p.reason),
        ])
    }

    static let dateFormat = ClockFormat("yyyy-MM-dd")!

    /// FNV-1a (64 bit) of `name=value` lines: stable across runs and platforms.
    public static func digest(_ settings: [(name: String, value: Int)]) -> String {
        var hash = FNV1a64()
        for (name, value) in settings { hash.add("\(name)=\(value)\n".utf8) }
        let hex = String(hash.value, radix: 16)
        return String(repeating: "0", count: 16 - hex.count) + hex
    }
}

private func format(_ seconds: Double) -> String {
    seconds == seconds.rounded() ? String(Int(seconds)) : String(seconds)
}

/// A first-in, first-out queue: an array and the index of its head.
struct FIFO<Element> {
    private var items: [Element] = []
    private var head = 0

    var isEmpty: Bool { head == items.count }
    var count: Int { items.count - head }
    var first: Element? { isEmpty ? nil : items[head] }

    mutating func append(_ element: Element) { items.append(element) }

    mutating func popFirst() -> Element? {
        guard !isEmpty else { return nil }
        let element = items[head]
        head += 1
        if head == items.count {
            items.removeAll(keepingCapacity: true)
            head = 0
        } else if head >= 1024 && head * 2 >= items.count {
            items.removeFirst(head)
            head = 0
        }
        return element
    }
}

extension FIFO: Sendable where Element: Sendable {}

/// The planner's deadlines (reply timeouts, backoff ends), earliest first;
/// an entry whose stamp no longer matches its command is stale.
struct DeadlineHeap: Sendable {
    struct Entry: Sendable {
        var until: MonotonicInstant
        var meter: String
        var command: String
        var stamp: Int
    }

    private var heap = MinHeap<Entry> { a, b in a.until == b.until ? a.stamp < b.stamp : a.until < b.until }

    var top: Entry? { heap.first }
    var count: Int { heap.count }
    mutating func push(_ entry: Entry) { heap.push(entry) }
    mutating func pop() { heap.popFirst() }
}
