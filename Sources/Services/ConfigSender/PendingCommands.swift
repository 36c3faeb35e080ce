import Clock
import RuleEngine

/// The config sender's commands sent and not yet resolved, by meter and
/// command: the in-flight window's bookkeeping. A command that never left
/// is not here: it waits in `CommandPacer` as a few bytes, and enters the
/// window when it is sent.
///
/// It knows which operation id (oprid) belongs to which command (every
/// attempt's, so a late reply to an earlier attempt still counts), how many
/// commands await a reply (`awaiting`, what the in-flight limit counts), and
/// each command's deadline (a reply timeout or the end of a backoff) in a heap
/// on the monotonic clock. A heap entry whose stamp no longer matches its
/// command is stale (resolved or re-armed since) and dropped when met. What
/// to do when a deadline passes is the planner's.
struct PendingCommands: Sendable {
    typealias Pending = PendingCommand

    private(set) var byMeter: [String: [String: Pending]] = [:]
    /// oprid → (meter, command) for every attempt of every pending command.
    private var operations: [String: (meter: String, command: String)] = [:]
    /// Commands sent and awaiting a reply.
    private(set) var awaiting = 0
    private var deadlines = DeadlineHeap()
    private var nextStamp = 1

    subscript(meter: String, command: String) -> Pending? { byMeter[meter]?[command] }

    /// Meter `id`'s pending commands, by name.
    func commands(of id: String) -> [String: Pending] { byMeter[id] ?? [:] }

    /// Commands sent at least once and not resolved.
    var count: Int { byMeter.values.reduce(0) { $0 + $1.count } }

    /// Retries waiting for their turn (pacing).
    var queuedCount: Int { byMeter.values.reduce(0) { $0 + $1.values.count(where: \.queued) } }

    /// The earliest deadline in the heap (it may be stale: that only makes a tick come early).
    var nextDeadline: MonotonicInstant? { deadlines.top?.until }

    enum ReplyMatch {
        case answers(Pending)
        /// Why the reply answers no pending command.
        case ignored(ConfigEvent)
    }

    /// The pending command `reply` answers: its oprid is one of the command's
    /// attempts', its meter (when it names one) the command's, and its topic
    /// one that answers the command.
    func match(_ reply: CommandReply) -> ReplyMatch {
        guard let ref = operations[reply.operationID], let p = self[ref.meter, ref.command] else {
            return .ignored(ConfigEvent(.debug, "reply_ignored", [("reason", "unknown oprid"), ("oprid", reply.operationID),
                                                                  ("meter", reply.deviceID), ("topic", reply.topic)]))
        }
        if let device = reply.deviceID, device != ref.meter {
            return .ignored(ConfigEvent(.warning, "reply_ignored", [("reason", "oprid belongs to another meter"), ("oprid", reply.operationID),
                                                                    ("meter", device), ("expected", ref.meter)]))
        }
        guard reply.commands.contains(ref.command) else {
            return .ignored(ConfigEvent(.warning, "reply_ignored", [("reason", "reply topic does not answer this command"),
                                                                    ("oprid", reply.operationID), ("topic", reply.topic), ("command", ref.command)]))
        }
        return .answers(p)
    }

    /// The command attempt `operationID` was sent for, while it is pending.
    func owner(of operationID: String) -> (meter: String, command: String)? { operations[operationID] }

    /// Puts `pending` (a retry whose backoff ended) in line, not sent: no deadline, not awaiting a reply.
    mutating func queue(_ pending: Pending) {
        var p = pending
        p.queued = true
        p.awaitingReply = false
        byMeter[p.meter, default: [:]][p.command] = p
    }

    /// Command `command` of meter `id` left as `message` (its first attempt,
    /// decided for `reason`, or a queued retry): it awaits a reply until `until`.
    mutating func sent(_ id: String, _ command: String, message: CommandMessage, reason: CommandReason, until: MonotonicInstant) {
        var p = self[id, command] ?? Pending(meter: id, command: command, message: nil, operationIDs: [], attempt: 0,
                                             awaitingReply: false, until: until, reason: reason)
        p.message = message
        p.operationIDs.append(message.operationID)
        p.attempt += 1
        p.awaitingReply = true
        p.queued = false
        byMeter[id, default: [:]][command] = p
        arm(id, command, until: until)
        operations[message.operationID] = (id, command)
        awaiting += 1
    }

    /// No reply came in time: command `command` of meter `id` backs off until `until`.
    mutating func backOff(_ id: String, _ command: String, until: MonotonicInstant) {
        guard self[id, command]?.awaitingReply == true else { return }
        byMeter[id]![command]!.awaitingReply = false
        awaiting -= 1
        arm(id, command, until: until)
    }

    /// Gives every command awaiting a reply the deadline `until` (replies may have been lost).
    mutating func rearmAwaiting(until: MonotonicInstant) {
        for (id, commands) in byMeter {
            for (name, p) in commands where p.awaitingReply { arm(id, name, until: until) }
        }
    }

    /// The effective configuration changed while command `command` of meter `id` was pending.
    mutating func markStale(_ id: String, _ command: String) {
        if self[id, command] != nil { byMeter[id]![command]!.stale = true }
    }

    /// Resolves command `command` of meter `id`: its oprids are no longer awaited.
    @discardableResult
    mutating func remove(_ id: String, _ command: String) -> Pending? {
        guard let p = byMeter[id]?.removeValue(forKey: command) else { return nil }
        if byMeter[id]!.isEmpty { byMeter[id] = nil }
        for op in p.operationIDs { operations[op] = nil }
        if p.awaitingReply { awaiting -= 1 }
        return p
    }

    /// Drops every pending command of meter `id`; returns their names.
    mutating func forget(_ id: String) -> [String] {
        let names = Array(commands(of: id).keys)
        for name in names { remove(id, name) }
        return names
    }

    /// Takes the commands whose deadline passed at `now`, sent ones only (a queued command has none).
    mutating func takeDue(now: MonotonicInstant) -> [Pending] {
        var due: [Pending] = []
        while let top = deadlines.top, now >= top.until {
            deadlines.pop()
            guard let p = self[top.meter, top.command], p.stamp == top.stamp, !p.queued else { continue }
            due.append(p)
        }
        return due
    }

    /// Drops resolved entries from the top of the heap, so `nextDeadline` is exact most of the time.
    mutating func purgeStaleDeadlines() {
        while let top = deadlines.top {
            if let p = self[top.meter, top.command], p.stamp == top.stamp, !p.queued { return }
            deadlines.pop()
        }
    }

    /// Sets the deadline of command `command` of meter `id` and records it in the heap.
    private mutating func arm(_ id: String, _ command: String, until: MonotonicInstant) {
        let stamp = nextStamp
        nextStamp += 1
        byMeter[id]![command]!.until = until
        byMeter[id]![command]!.stamp = stamp
        deadlines.push(DeadlineHeap.Entry(until: until, meter: id, command: command, stamp: stamp))
    }
}

/// A command decided and not yet resolved: queued, awaiting a reply, or backing off.
public struct PendingCommand: Sendable, Equatable {
    public var meter: String
    public var command: String
    /// The last message sent (its `operationID` is the newest); nil: never sent (it is built when it leaves).
    public var message: CommandMessage?
    /// Every oprid sent for this command: a late reply to an earlier attempt still counts.
    public var operationIDs: [String]
    /// Sends so far (1 = the first attempt; 0 = queued, never sent).
    public var attempt: Int
    /// true: waiting for a reply until `until`; false: backing off until `until`, or queued.
    public var awaitingReply: Bool
    /// On the monotonic clock: a wall-clock jump neither fires nor postpones it.
    public var until: MonotonicInstant
    public var reason: CommandReason
    /// The effective config changed while it was in flight: look again when it resolves.
    var stale = false
    /// Waiting for its turn (pacing): no deadline; `message` is the last attempt's, nil before the first.
    public internal(set) var queued = false
    /// Names this `until` in the deadline heap; a heap entry with another stamp is stale.
    var stamp = 0

    /// The log line of its latest attempt going unanswered; it is sent again in `seconds`.
    func timeoutEvent(retryIn seconds: Double) -> ConfigEvent {
        ConfigEvent(.warning, "reply_timeout", [
            ("meter", meter), ("command", command), ("oprid", message?.operationID), ("attempt", String(attempt)),
            ("retry_in_s", seconds == seconds.rounded() ? String(Int(seconds)) : String(seconds)),
        ])
    }

    /// The log line of its latest attempt leaving.
    var sentEvent: ConfigEvent {
        ConfigEvent(.info, "command_sent", [
            ("meter", meter), ("command", command), ("value", message?.value), ("topic", message?.topic),
            ("oprid", message?.operationID), ("attempt", String(attempt)), ("reason", reason.name),
        ])
    }
}

/// Reply timeouts and backoff ends, earliest first; an entry whose stamp no
/// longer matches its command is stale.
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
