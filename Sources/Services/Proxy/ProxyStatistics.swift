import JSON
import RuleEngine

/// The proxy's counters and what it knows of the meters; the status document
/// is made from them. Owned by the proxy core, on the loop thread: no lock.
struct ProxyStatistics {
    /// Reasons the proxy itself adds to the engine's `DropReason`s.
    static let tooLarge = "too_large"
    /// libmosquitto refused to send a message (e.g. larger than the broker allows).
    static let publishFailed = "publish_failed"
    static let dropReasons = DropReason.allCases.map(\.rawValue) + [tooLarge, publishFailed]

    var received = 0
    /// Readings that arrived at QoS 0: their meter published at QoS 0, so the
    /// meters' broker may have lost others of them without a trace.
    var receivedQoS0 = 0
    /// The meters' broker's own figures (`$SYS`).
    var internalBroker = InternalBrokerFigures()
    var forwarded = 0
    var announced = 0
    /// Announcements not sent: the meter is another instance's (see `ProxyCore.mayAnnounce`).
    var ownedElsewhere = 0
    /// Records the central broker refused for good, moved to the dead letters.
    var deadLettered = 0
    /// Refusals for a passing reason, each sent again after a back-off.
    var refusedRetried = 0
    var dropped: [String: Int] = [:]
    var internalConnected = false
    var centralConnected = false

    mutating func countDrop(_ reason: String, _ n: Int = 1) { dropped[reason, default: 0] += n }

    /// A reading arrived at QoS 0: counted, and a warning, since nothing
    /// guarantees the meter's other readings reached the proxy. Warned at
    /// the 1st, 2nd, 4th, 8th… only: a QoS 0 fleet costs no more than a
    /// count per reading.
    mutating func receivedAtQoS0(topic: String) -> ProxyAction? {
        receivedQoS0 += 1
        guard receivedQoS0 & (receivedQoS0 - 1) == 0 else { return nil }
        return .log(ConfigEvent(.warning, "reading_at_qos0", [
            ("topic", topic), ("count", String(receivedQoS0)),
            ("detail", "a meter publishes at QoS 0: the meters' broker may drop its readings without a trace"),
            ("hint", "set the meter's MQTT QoS to 1"),
        ]))
    }

    /// A `$SYS` figure of the internal broker; a rise of its dropped count is a warning.
    mutating func internalBrokerFigure(topic: String, payload: UnsafeRawBufferPointer) -> ProxyAction? {
        guard let figure = internalBroker.take(topic: topic, payload: payload), figure.key == "dropped" else { return nil }
        let rise = figure.previous.map { figure.value >= $0 ? figure.value - $0 : figure.value } ?? figure.value
        guard rise > 0 else { return nil }
        return .log(ConfigEvent(.warning, "internal_broker_dropped", [
            ("dropped", String(rise)), ("total", String(figure.value)),
            ("detail", figure.previous == nil ? "the meters' broker dropped messages since it started" : "the meters' broker dropped messages"),
            ("hint", "a full client queue (max_queued_messages) on the meters' broker: readings or commands were lost there"),
        ]), limit: "internal.dropped")
    }

    /// A message over `proxy.max_payload_bytes`, dropped before the engine.
    mutating func tooLarge(topic: String, bytes: Int, limit: Int) -> ProxyAction {
        countDrop(Self.tooLarge)
        return .log(ConfigEvent(.warning, "input_dropped", [
            ("reason", Self.tooLarge), ("topic", topic), ("detail", "\(bytes) bytes, the limit is \(limit)"),
        ]), limit: "drop.\(Self.tooLarge)")
    }

    /// A message the engine dropped. Junk the rules expect (half of a real
    /// capture: all zero, duplicates, excluded meters) is not news: logged
    /// at debug, and only when debug lines are `logged` (no line made per message).
    mutating func dropped(_ drop: Drop, logged debug: Bool) -> ProxyAction? {
        countDrop(drop.reason.rawValue)
        let level: ConfigEvent.Level = switch drop.reason {
        case .allZero, .duplicate, .excluded: .debug
        default: .warning
        }
        if level == .debug && !debug { return nil }
        return .log(ConfigEvent(level, "input_dropped", [
            ("reason", drop.reason.rawValue), ("topic", drop.topic), ("detail", drop.detail),
        ]), limit: "drop.\(drop.reason.rawValue)")
    }
}

/// What the proxy knows of its journal for the status document.
struct JournalStatus {
    var bytes: Int
    var messages: Int
    var oldestUnacknowledgedSeconds: Double?
    var backPressureSeconds: Double
    var backPressureActive: Bool
    var replayedAtStart: Int
    var cutAtStart: Int
    /// Records lost to corruption found at start-up (`JournalRecovery.corruptRecords`).
    var corruptAtStart: Int
}

extension ProxyStatistics {
    /// The status document (`ProxyStatus`): the counters, the journal, the
    /// meters' broker's figures, and of the meters only totals.
    ///
    /// `meters_seen`: meters heard since the start (the engine's
    /// `metersHeard`); `meters_online`: those heard from within their allowed
    /// silence (their Home Assistant `expire_after`); `forwarded_per_minute`:
    /// since the previous status.
    func status(state: String, version: String, started: Instant, now: Instant, journal: JournalStatus,
                metersSeen: Int, metersOnline: Int, forwardedPerMinute: Int, problems: [String] = [],
                readBack: (complete: Bool, announced: Int, seen: Int)? = nil) -> ProxyStatus {
        var status = ProxyStatus(state: state)
        status.version = version
        status.started = started.iso8601
        status.time = now.iso8601
        status.internalConnected = internalConnected
        status.centralConnected = centralConnected
        status.counters = [
            ("received", received), ("received_qos0", receivedQoS0), ("forwarded", forwarded), ("announced", announced),
            ("owned_elsewhere", ownedElsewhere), ("dead_lettered", deadLettered), ("refused_retried", refusedRetried),
        ].map { ProxyStatus.Counter(name: $0.0, value: $0.1) }
        status.dropped = Self.dropReasons.map { ProxyStatus.Counter(name: $0, value: dropped[$0] ?? 0) }
        var journalObject: JSONObject = [
            "bytes": .integer(Int64(journal.bytes)),
            "messages": .integer(Int64(journal.messages)),
            "back_pressure": .bool(journal.backPressureActive),
            "back_pressure_s": .integer(Int64(journal.backPressureSeconds.rounded())),
            "replayed_at_start": .integer(Int64(journal.replayedAtStart)),
            "cut_at_start_bytes": .integer(Int64(journal.cutAtStart)),
            "corrupt_at_start": .integer(Int64(journal.corruptAtStart)),
        ]
        journalObject["oldest_unacknowledged_age_s"] = journal.oldestUnacknowledgedSeconds
            .map { .integer(Int64($0.rounded(.down))) } ?? .null
        status.journal = journalObject
        status.internalBroker = internalBroker.document
        status.metersSeen = metersSeen
        status.metersOnline = metersOnline
        status.forwardedPerMinute = forwardedPerMinute
        status.problems = problems
        status.readBack = readBack
        return status
    }

    /// These figures with the delivery's and the announcements' own (the
    /// status document's whole set).
    func adding(_ counts: ProxyDelivery.Counts, ownedElsewhere: Int) -> ProxyStatistics {
        var all = self
        all.forwarded = counts.forwarded
        all.announced = counts.announced
        all.deadLettered = counts.deadLettered
        all.refusedRetried = counts.refusedRetried
        if counts.publishFailed > 0 { all.countDrop(ProxyStatistics.publishFailed, counts.publishFailed) }
        all.ownedElsewhere = ownedElsewhere
        return all
    }
}
