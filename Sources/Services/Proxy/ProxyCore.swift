#if canImport(Glibc)
import Glibc
#endif
import JSON
import Journal
import Clock
import MQTT
import RuleEngine

/// What the proxy core needs from the brokers. `ProxyService` implements it
/// over two `MQTTClient`s; unit tests over a recorder, with no broker.
protocol ProxyTransport: AnyObject {
    var isCentralConnected: Bool { get }
    /// Publishes at QoS 1 on the central broker; returns the message id. The
    /// transport queues it while disconnected (see `MQTTClient`). The topic's
    /// bytes are borrowed from the journal record, like the payload.
    func publishCentral(topic: UnsafeRawBufferPointer, payload: UnsafeRawBufferPointer, retain: Bool) throws(MQTTError) -> Int32
    /// Back-pressure: stop (false) or resume (true) reading the internal broker.
    func setInternalReading(_ enabled: Bool)
    /// While false, nothing may be written to the internal broker: no PUBACK
    /// for a message whose results are not in the journal yet.
    func setInternalWrites(_ enabled: Bool)
    /// Publishes at QoS 1 on the internal broker (the copy of a discovery
    /// message). The transport queues it while disconnected, and while the
    /// internal broker's writes are held or its reading is paused.
    func publishInternal(topic: String, payload: UnsafeRawBufferPointer, retain: Bool) throws(MQTTError)
}

/// The kind byte of a journal record.
enum JournalKind {
    static let data: UInt8 = 0
    static let discovery: UInt8 = 1
    static let homeAssistant: UInt8 = 2
    static let command: UInt8 = 3

    static func of(_ kind: Outgoing.Kind) -> UInt8 {
        switch kind {
        case .data: data
        case .discovery: discovery
        case .homeAssistant: homeAssistant
        case .command: command
        }
    }
}

/// The proxy's logic: messages from the internal broker go through the rule
/// engine into the journal; the journal's records go to the central broker,
/// a window at a time, and leave it with their PUBACK.
///
/// Pure of threads and sockets: the service calls it on its loop thread with
/// events (a message, a PUBACK, a connection change, the end of a loop
/// iteration, a tick) and it acts through `ProxyTransport` and the journal.
///
/// ## Nothing accepted is lost
/// `received` only *appends* to the journal's memory buffer. `endOfIteration`
/// writes that buffer to the segment file (write(2): in the page cache, so it
/// survives the process being killed), and only after it returned does the
/// loop write the PUBACKs of those messages (`EventLoop`, step 5). A SIGKILL
/// before the write leaves the messages unacknowledged at the internal broker,
/// which sends them again to our persistent session; after it, they are on
/// disk and are sent at the next start. If the write fails (disk full), the
/// internal broker's writes are held and reading stops until it succeeds.
///
/// ## Back-pressure: a hard bound
/// The journal never holds more than `maxBytes`. The core stops reading the
/// internal broker, which keeps queueing in our persistent session, as soon
/// as the journal reaches `readLimit`: `maxBytes` less the headroom one more
/// message can need (`readHeadroom`). It stops *during* a read, after the
/// message that reached it (`MQTTClient.pauseReading` ends libmosquitto's
/// read there), so what was read and acknowledged is never dropped and one
/// message at most follows the decision. It reads again once the central
/// broker's acknowledgements brought the journal under 90 % of `readLimit`.
/// What the proxy appends by itself (converging the announcements after a
/// read-back or a reload, Home Assistant's restart) waits for room the same
/// way (`pendingAnnouncements`).
final class ProxyCore {
    struct Settings {
        var maxPayloadBytes = 65_536
        /// Journal records handed to the central connection and not yet acknowledged.
        var window = 256
        /// After a reconnect, libmosquitto sends its unacknowledged messages
        /// again; new ones wait until those are acknowledged, or this long.
        var resendGraceSeconds = 10.0
        /// Under load, how often the acknowledged position is written (one
        /// pwrite); an iteration without traffic writes it at once. A crash
        /// sends again at most this much of what was acknowledged.
        var acknowledgementWriteSeconds = 0.05
        /// Copy discovery messages to the internal broker (`proxy.discovery_on_internal`).
        var discoveryOnInternal = true
        /// The most meters with state (`proxy.max_meters`): the engines', the
        /// ledger's and the other instances' tables each hold at most this many.
        var maxMeters = 250_000
    }

    let log: Log
    let origin: Origin
    let journal: Journal
    weak var transport: (any ProxyTransport)?
    var settings: Settings
    /// Every pack's engine; with one pack, that engine alone (no routing).
    private(set) var engine: PackRouter
    private(set) var statistics = ProxyStatistics()

    /// Central message id → journal sequence and kind, for records handed over.
    private var inFlight = InFlightTable()
    /// Message ids of status messages (not journal records), until acknowledged.
    private var statusInFlight: Set<Int32> = []
    /// Records the broker refused (MQTT 5), by message id, until their
    /// acknowledgement: the reason code and its name.
    private var refusedInFlight: [Int32: (code: Int32, reason: String)] = [:]
    /// Records refused for a passing reason (quota exceeded, server busy, …),
    /// sent again once due; at most a window of them.
    private var retries: [(record: JournalRecord, due: MonotonicInstant)] = []
    /// Refusals so far per sequence, for the back-off; until it is delivered or dead-lettered.
    private var refusals: [UInt64: Int] = [:]
    /// Where records refused for good go (`DeadLetters`); nil: they stay in
    /// the journal and are tried again like passing refusals.
    var deadLetters: DeadLetters?
    /// The meters whose discovery message this proxy has on the central
    /// broker, as far as it knows: persisted (`announcedFile`), so that a
    /// read-back can tell whether it saw everything (`readBack`).
    private(set) var announced: Set<String> = []
    private var announcedChanged = false
    /// `<state>/announced`, one id a line; nil: not kept (tests without one).
    var announcedFile: String? {
        didSet { loadAnnounced() }
    }
    /// What the last read-back saw of `announced` (nil before the first).
    private(set) var readBack: (complete: Bool, announced: Int, seen: Int)?
    /// The read-back of this central connection (its token and deadline).
    private(set) var readBackRound: ProxyReadBack
    /// The guarded counters on disk; nil: not kept (tests without them).
    var counters: ProxyCounters?
    /// Letters in the dead-letter file, and its size when they were counted.
    private(set) var deadLetterCount = 0
    private var deadLetterBytes = -1
    private var holdUntil: MonotonicInstant?
    private var centralConnected = false
    private var journalBroken = false
    private var backPressureSince: MonotonicInstant?
    private var backPressureTotal = 0.0
    private var output = ProcessOutput()
    /// A record handed out by the journal that the transport could not take
    /// for a passing reason (a copy: the journal lends its records only until
    /// the next read): it goes first at the next pump.
    private var retryRecord: JournalRecord?
    private var acknowledgementsWritten = MonotonicInstant(nanoseconds: 0)
    /// A message was received or a record handed over in this iteration.
    private var busy = false
    private let recovery: JournalRecovery
    /// What the central broker retains of our announcements (see `DiscoveryLedger`).
    private(set) var ledger: DiscoveryLedger
    /// The ledger holds the broker's retained messages: announcements go
    /// through it. Until then they wait here, the latest per meter.
    private(set) var ledgerReady = false
    private var parked: [String: (discovery: Outgoing?, homeAssistant: [Outgoing]?)] = [:]
    /// Meters whose announcements are to be brought to what the rules want
    /// (`forced`: sent even if the broker has them), worked through while
    /// the journal is under `readLimit`; from `pendingHead` on.
    private var pendingAnnouncements: [(id: String, forced: Bool)] = []
    private var pendingHead = 0
    /// The most bytes one message from the internal broker added to the journal.
    private var largestMessageBytes = 0
    /// The clocks of the latest event, for what the core does on its own.
    private var lastWallClock = Instant(epochMillis: 0)
    private var lastIteration = MonotonicInstant(nanoseconds: 0)
    /// Which instance announces which meter.
    private(set) var ownership = ProxyOwnership()

    init(programs: ProgramSet, journal: Journal, settings: Settings, origin: Origin, log: Log, clientID: String = "kpm33b-proxy") {
        self.engine = PackRouter(programs: programs, origin: origin, maxMeters: settings.maxMeters)
        self.journal = journal
        self.settings = settings
        self.origin = origin
        self.log = log
        self.recovery = journal.recovery
        self.ledger = DiscoveryLedger(discoveryFilters: programs.discoverySubscriptions,
                                      discoveryPrefix: programs.siteConfig.homeAssistant.discoveryPrefix,
                                      originName: origin.name, instance: programs.instance, maxMeters: settings.maxMeters)
        self.readBackRound = ProxyReadBack(rootTopic: programs.rootTopic, clientID: clientID)
    }

    var programs: ProgramSet { engine.programs }

    // MARK: Events

    /// A reading arrived at QoS 0 (before `received`): counted, and a warning,
    /// since nothing guarantees the meter's other readings reached the proxy.
    /// Warned at the 1st, 2nd, 4th, 8th… only: a QoS 0 fleet costs no more
    /// than a count per reading.
    func receivedAtQoS0(topic: String) {
        statistics.receivedQoS0 += 1
        let n = statistics.receivedQoS0
        guard n & (n - 1) == 0 else { return }
        log.warning("reading_at_qos0", [
            "topic": topic, "count": String(statistics.receivedQoS0),
            "detail": "a meter publishes at QoS 0: the meters' broker may drop its readings without a trace",
            "hint": "set the meter's MQTT QoS to 1",
        ])
    }

    /// A `$SYS` figure of the internal broker (`InternalBrokerFigures`); a
    /// rise of its dropped count is a warning.
    func internalBrokerFigure(topic: String, payload: UnsafeRawBufferPointer) {
        guard let figure = statistics.internalBroker.take(topic: topic, payload: payload), figure.key == "dropped" else { return }
        let rise = figure.previous.map { figure.value >= $0 ? figure.value - $0 : figure.value } ?? figure.value
        guard rise > 0 else { return }
        log.limited(.warning, key: "internal.dropped", "internal_broker_dropped", [
            "dropped": String(rise), "total": String(figure.value),
            "detail": figure.previous == nil ? "the meters' broker dropped messages since it started" : "the meters' broker dropped messages",
            "hint": "a full client queue (max_queued_messages) on the meters' broker: readings or commands were lost there",
        ])
    }

    /// A message from the internal broker, borrowed for the call.
    func received(topic: String, payload: UnsafeRawBufferPointer, now: Instant) {
        statistics.received += 1
        if payload.count > settings.maxPayloadBytes {
            statistics.countDrop(ProxyStatistics.tooLarge)
            log.limited(.warning, key: "drop.\(ProxyStatistics.tooLarge)", "input_dropped", [
                "reason": ProxyStatistics.tooLarge, "topic": topic,
                "detail": "\(payload.count) bytes, the limit is \(settings.maxPayloadBytes)",
            ])
            return
        }
        busy = true
        lastWallClock = now
        let before = journal.bytes
        output.removeAll()
        engine.process(topic: topic, payload: payload, now: now, into: &output)
        take(output, now: now)
        largestMessageBytes = max(largestMessageBytes, journal.bytes - before)
        // At once, not at the end of the iteration: the rest of this read waits in the broker.
        if journal.bytes >= readLimit { beginBackPressure(at: lastIteration) }
    }

    /// The headroom one more message from the internal broker can need: its
    /// clean output (about its payload) and a new meter's announcements
    /// (64 KiB allowed), or twice the most one message brought so far;
    /// at most half the journal.
    var readHeadroom: Int {
        min(journal.maxBytes / 2, max(settings.maxPayloadBytes + (64 << 10), 2 * largestMessageBytes))
    }

    /// Reading is stopped for want of room in the journal (or a failed write).
    var isBackPressureActive: Bool { backPressureSince != nil }

    /// The journal size at which reading stops (see the type's documentation).
    var readLimit: Int { journal.maxBytes - readHeadroom }

    /// Home Assistant came online: every meter's entity configs again, one
    /// message per meter in the device form (through the journal).
    func announceHomeAssistant(now: Instant) {
        guard ledgerReady, programs.siteConfig.homeAssistant.enabled else { return }
        lastWallClock = now
        pendingAnnouncements += knownMeters().map { ($0, true) }
        announcePending()
    }

    // MARK: Reading back the central broker

    /// The central connection is (re)established and its subscriptions are
    /// on the way: the ledger is read afresh.
    func readBackStarted() {
        readBackRound.connected()
        ledger.reset()
        ledgerReady = false
        // The pass in progress planned against the old ledger; the next read-back starts a new one.
        pendingAnnouncements.removeAll()
        pendingHead = 0
    }

    /// The central broker settled the subscriptions: the read-back's token goes out.
    func subscriptionsSettled(at now: MonotonicInstant) {
        perform(readBackRound.subscriptionsSettled(at: now))
    }

    /// A message on the read-back topic: its echo ends the read-back.
    func readBackEcho(_ payload: UnsafeRawBufferPointer, now: Instant) {
        if readBackRound.echo(payload) { readBackFinished(now: now) }
    }

    /// A retained (or live) message on one of `ledger.filters`.
    func observed(topic: String, payload: [UInt8]) {
        ledger.observe(topic: topic, payload: payload)
    }

    /// Every retained message is in: converge, then announce as things happen.
    ///
    /// Whether the read-back saw everything is judged against what this
    /// proxy knows it announced (`announced`), not against the broker's
    /// word: a broker that drops retained messages on the way (its
    /// `max_queued_messages`) or lost them cannot make it look complete. A
    /// meter now announced by another instance was taken over: not missing.
    func readBackFinished(now: Instant) {
        let wasReady = ledgerReady
        ledgerReady = true
        var seen = 0
        for id in announced {
            guard let meter = ledger.meters[id], meter.discovery != nil else { continue }
            if meter.isOwned(byOtherThan: programs.instance) {
                announced.remove(id)
                announcedChanged = true
            } else {
                seen += 1
            }
        }
        let complete = seen == announced.count && ledger.overflowed == 0
        readBack = (complete, announced.count, seen)
        log.info("discovery_read_back", [
            "meters": String(ledger.meters.count), "detail": wasReady ? "again" : "converging",
            "complete": String(complete), "announced": String(announced.count), "seen": String(seen),
        ])
        if !complete {
            log.warning("read_back_incomplete", [
                "announced": String(announced.count), "seen": String(seen), "not_read_back": String(ledger.overflowed),
                "detail": "the central broker did not hand back every retained announcement of this proxy; a missing meter heard since the start is announced again, the others when they are next heard",
                "hint": "the broker drops what exceeds max_queued_messages (see broker/README.md), or lost its retained messages",
            ])
        }
        converge(now: now)
    }

    /// Reads `announcedFile` (at most `maxMeters` ids).
    private func loadAnnounced() {
        guard let path = announcedFile, let bytes = FileSystem.read(path) else { return }
        for line in bytes.split(separator: 0x0A) where announced.count < settings.maxMeters {
            let id = String(decoding: line, as: UTF8.self)
            if programs.isValidDeviceID(id) { announced.insert(id) }
        }
    }

    /// Writes `announcedFile` when it changed (once a second from the service):
    /// a temporary file renamed over it.
    func saveAnnounced() {
        guard announcedChanged, let path = announcedFile else { return }
        announcedChanged = false
        let text = announced.sorted().joined(separator: "\n") + "\n"
        let temporary = path + ".tmp"
        guard Self.write(Array(text.utf8), to: temporary), rename(temporary, path) == 0 else {
            log.limited(.error, key: "announced.save", "announced_not_saved", ["path": path])
            announcedChanged = true
            return
        }
    }

    /// Brings every meter the broker or the engine knows to what the rules
    /// and the site config want: missing or changed announcements go out,
    /// what no longer exists is removed, an excluded meter is cleared. As
    /// the journal has room (`announcePending`): thousands of meters'
    /// announcements never push it past its bound.
    private func converge(now: Instant) {
        lastWallClock = now
        pendingAnnouncements += knownMeters().map { ($0, false) }
        announcePending()
    }

    /// Works through `pendingAnnouncements` while the journal is under
    /// `readLimit`; the rest waits for the next iteration.
    private func announcePending() {
        let now = lastWallClock
        while pendingHead < pendingAnnouncements.count && journal.bytes < readLimit {
            let (id, forced) = pendingAnnouncements[pendingHead]
            pendingHead += 1
            if forced { announceAgain(id, now: now) } else { converge(id, now: now) }
        }
        if pendingHead == pendingAnnouncements.count {
            pendingAnnouncements.removeAll()
            pendingHead = 0
        }
    }

    private func converge(_ id: String, now: Instant) {
        let homeAssistant = programs.siteConfig.homeAssistant.enabled
        let waiting = parked.removeValue(forKey: id)
        guard mayAnnounce(id, quiet: waiting == nil, heard: waiting != nil || engine.hasSeen(id)) else { return }
        if programs.isExcluded(id) || !programs.isValidDeviceID(id) {
            append(ledger.clearAll(id: id, program: programs.running(id), origin: origin), now: now)
            return
        }
        // A meter heard since the start: the engine has its announcements; one only retained: the rules.
        let current = engine.announcements(for: id)
        let discovery = waiting?.discovery ?? current.first { $0.kind == .discovery }
        let configs = !homeAssistant ? []
            : engine.hasSeen(id) ? current.filter { $0.kind == .homeAssistant } : programs.homeAssistantConfigs(for: id, origin: origin)
        append(ledger.plan(id: id, discovery: discovery, homeAssistant: configs, forced: false,
                           program: programs.running(id), origin: origin), now: now)
    }

    /// Home Assistant came online: the meter's entity configs again.
    private func announceAgain(_ id: String, now: Instant) {
        guard programs.siteConfig.homeAssistant.enabled, !programs.isExcluded(id), programs.isValidDeviceID(id),
              mayAnnounce(id, quiet: true, heard: engine.hasSeen(id)) else { return }
        append(ledger.plan(id: id, discovery: nil, homeAssistant: programs.homeAssistantConfigs(for: id, origin: origin),
                           forced: true, program: programs.running(id), origin: origin), now: now)
    }

    /// The meters the broker holds announcements of, those seen since the
    /// start, and those waiting to be announced, in a stable order.
    private func knownMeters() -> [String] {
        var ids = Set(ledger.meters.keys)
        ids.formUnion(engine.seenDevices)
        ids.formUnion(parked.keys)
        return ids.sorted()
    }

    /// Once a second: split sets that never completed expire, an overdue
    /// read-back goes on with what arrived, the state on disk is brought up
    /// to date (counters, announced meters, the dead letters' count).
    func tick(now: Instant) {
        lastWallClock = now
        output.removeAll()
        engine.expire(now: now, into: &output)
        take(output, now: now)
        if readBackRound.timedOut(at: lastIteration) {
            log.warning("read_back_incomplete", [
                "detail": "no echo on \(readBackRound.topic) within \(Int(ProxyReadBack.timeoutSeconds)) s; going on with the retained messages that arrived",
                "hint": "the central broker's ACL must let the proxy publish and subscribe to \(readBackRound.topic)",
            ])
            readBackFinished(now: now)
        }
        if let counters {
            perform(counters.takeResetRequests(engine))
            perform(counters.save(engine))
        }
        refreshDeadLetters()
        saveAnnounced()
    }

    /// At shutdown: every counter, the announced meters and the acknowledged position on disk.
    func saveState() {
        if let counters { perform(counters.save(engine, all: true)) }
        saveAnnounced()
        persistAcknowledgements()
    }

    /// Carries out what a part decided.
    private func perform(_ actions: [ProxyAction]) {
        for action in actions {
            switch action {
            case .internalReading(let enabled): transport?.setInternalReading(enabled)
            case .internalWrites(let enabled): transport?.setInternalWrites(enabled)
            case .append(let message): append(message, now: lastWallClock)
            case .publishInternal(let message): publishInternal(message)
            case .publishCentral(let topic, let payload): publishCentral(topic: topic, payload: payload)
            case .log(let event, let limit): log.emit(event, limit: limit)
            }
        }
    }

    /// A message outside the journal (the read-back's token): its PUBACK is no record's.
    private func publishCentral(topic: String, payload: [UInt8]) {
        guard let transport else { return }
        var topic = topic
        let result: Result<Int32, MQTTError> = topic.withUTF8 { topicBytes in
            payload.withUnsafeBytes { bytes in
                Result { () throws(MQTTError) in
                    try transport.publishCentral(topic: UnsafeRawBufferPointer(topicBytes), payload: bytes, retain: false)
                }
            }
        }
        switch result {
        case .success(let mid): statusPublished(mid)
        case .failure(let error): log.warning("read_back_failed", ["error": "\(error)"])
        }
    }

    /// SIGHUP compiled new programs (every pack): they run from the next message on.
    func reload(_ programs: ProgramSet, now: Instant) {
        let counters = engine.counters
        engine = PackRouter(programs: programs, origin: origin, maxMeters: settings.maxMeters)
        self.counters?.engineReplaced()
        ledger.maxMeters = settings.maxMeters
        // The guarded counters carry over: a reload must not let a glitch through.
        engine.restore(counters)
        log.info("rules_reloaded", ["pack": programs.packName, "routes": programs.routeNames.joined(separator: ",")])
        // Entities of renamed or removed fields and of disabled groups go,
        // new ones come, an excluded meter is cleared: at once, for every meter.
        if ledgerReady { converge(now: now) }
    }

    func internalConnectionChanged(_ connected: Bool) {
        statistics.internalConnected = connected
    }

    func centralConnectionChanged(_ connected: Bool, at now: MonotonicInstant) {
        statistics.centralConnected = connected
        if connected && !centralConnected && !inFlight.isEmpty {
            holdUntil = now.adding(seconds: settings.resendGraceSeconds)
        }
        centralConnected = connected
    }

    /// The central broker acknowledged `mid`.
    func acknowledged(_ mid: Int32) {
        // The sets are empty nearly always: no hashing then.
        if !statusInFlight.isEmpty && statusInFlight.remove(mid) != nil { return }
        guard let record = inFlight.remove(mid) else { return }
        if !refusedInFlight.isEmpty, let refusal = refusedInFlight.removeValue(forKey: mid) {
            refused(record.sequence, code: refusal.code, reason: refusal.reason)
        } else {
            journal.acknowledge(record.sequence)
            if !refusals.isEmpty { refusals[record.sequence] = nil }
            statistics.countAcknowledged(kind: record.kind)
        }
        if inFlight.isEmpty { holdUntil = nil }
    }

    /// MQTT 5: the central broker refused `mid`; the `acknowledged` that
    /// follows decides what becomes of the record (`refused`).
    func rejected(_ mid: Int32, code: Int32, reason: String, at now: MonotonicInstant) {
        guard inFlight[mid] != nil else { return }
        lastIteration = max(lastIteration, now)
        refusedInFlight[mid] = (code, reason)
    }

    /// Reason codes that sending the same message again cannot change: not
    /// authorized, topic name invalid, packet too large, payload format invalid.
    static let permanentRefusals: Set<Int32> = [0x87, 0x90, 0x95, 0x99]

    /// No refusal is silently final. One for good goes to the dead letters
    /// (and then leaves the journal); any other (quota exceeded 0x97, server
    /// busy 0x89, unspecified 0x80, …) is sent again after a back-off of 1 s
    /// doubling to 60 s, the record staying in the journal meanwhile — as a
    /// permanent one does when the dead-letter file cannot take it.
    private func refused(_ sequence: UInt64, code: Int32, reason: String) {
        let record: JournalRecord?
        do {
            record = try journal.record(sequence)
        } catch {
            record = nil
            log.error("journal_read_failed", ["sequence": String(sequence), "error": "\(error)"])
        }
        // Unreadable: it stays in the journal, sent again at the next start.
        guard let record else { return }
        let topic = String(decoding: record.topic, as: UTF8.self)
        let code16 = "0x" + String(code, radix: 16)
        if Self.permanentRefusals.contains(code), let deadLetters {
            let letter = DeadLetters.Letter(time: lastWallClock.iso8601, sequence: sequence, code: Int(code), reason: reason,
                                            topic: topic, retain: record.retain, kind: record.kind, payload: record.payload)
            do {
                if try deadLetters.append(letter) {
                    journal.acknowledge(sequence)
                    refusals[sequence] = nil
                    statistics.deadLettered += 1
                    deadLetterCount += 1
                    log.error("publish_dead_lettered", [
                        "code": code16, "reason": reason, "topic": topic, "sequence": String(sequence),
                        "hint": "fix the central broker (its ACL, its limits), then: kpm33b-proxy dead-letters replay",
                    ])
                    return
                }
                log.limited(.error, key: "dead_letters.full", "dead_letters_full", [
                    "path": deadLetters.path, "detail": "kept in the journal and tried again; replay or discard the dead letters",
                ])
            } catch {
                log.limited(.error, key: "dead_letters.write", "dead_letter_write_failed", ["error": error.message])
            }
        }
        let attempts = (refusals[sequence] ?? 0) + 1
        refusals[sequence] = attempts
        let delay = min(60.0, Double(1 << min(attempts - 1, 6)))
        retries.append((record, lastIteration.adding(seconds: delay)))
        statistics.refusedRetried += 1
        log.limited(.warning, key: "publish.refused", "publish_refused", [
            "code": code16, "reason": reason, "topic": topic, "sequence": String(sequence),
            "retry_in_s": String(Int(delay)), "attempt": String(attempts),
        ])
    }

    /// Counts the dead letters again when their file changed (the
    /// `dead-letters` command replays or discards them beside the proxy).
    func refreshDeadLetters() {
        guard let deadLetters else { return }
        let bytes = deadLetters.bytes
        guard bytes != deadLetterBytes else { return }
        deadLetterBytes = bytes
        deadLetterCount = bytes == 0 ? 0 : ((try? deadLetters.load())?.letters.count ?? deadLetterCount)
    }

    /// The end of a loop iteration, before any socket is written: the journal
    /// buffer goes to disk, back-pressure is decided, records go out.
    func endOfIteration(at now: MonotonicInstant) {
        lastIteration = now
        writeJournal()
        decideBackPressure(at: now)
        pump(at: now)
        if pendingHead < pendingAnnouncements.count { announcePending() }
        if !busy || now.seconds(since: acknowledgementsWritten) >= settings.acknowledgementWriteSeconds {
            acknowledgementsWritten = now
            persistAcknowledgements()
        }
        busy = false
    }

    /// Writes the acknowledged position now (also at shutdown).
    func persistAcknowledgements() {
        do {
            try journal.persistAcknowledgements()
        } catch {
            log.limited(.error, key: "journal.ack", "journal_ack_write_failed", ["error": "\(error)"])
        }
    }

    /// A status message the service published: its PUBACK is not a record's.
    func statusPublished(_ mid: Int32) { statusInFlight.insert(mid) }

    /// The state database was found damaged at start-up (`loadCounters`).
    private(set) var stateProblem: String?

    /// Start-up: the guarded counters saved by the last run, kept from now on.
    func loadCounters(_ counters: ProxyCounters, now: Instant) throws(ServiceError) {
        self.counters = counters
        let loaded = try counters.load(into: engine, now: now)
        stateProblem = loaded.problem
        perform(loaded.actions)
    }

    /// What needs an operator now, one line each (the status's `problems`,
    /// the health device's problem sensor); empty when all is well.
    var problems: [String] {
        var list: [String] = []
        if let stateProblem { list.append(stateProblem) }
        if let limit = engine.meterLimit, limit.isReached {
            list.append("meter_limit: \(limit.maximum) meters known, new ones are dropped (proxy.max_meters)")
        }
        if deadLetterCount > 0 {
            list.append("dead_letters: \(deadLetterCount) record(s) the central broker refused for good; kpm33b-proxy dead-letters list|replay|discard")
        }
        if !retries.isEmpty {
            list.append("publish_refused: \(retries.count) record(s) refused for a passing reason, sent again after a back-off")
        }
        if let readBack, !readBack.complete {
            list.append("read_back_incomplete: \(readBack.seen) of \(readBack.announced) announced meters read back from the central broker (its max_queued_messages?)")
        }
        if ledger.overflowed > 0 {
            list.append("meter_limit: the central broker holds announcements of more than \(ledger.maxMeters) meters; \(ledger.overflowed) not read back (proxy.max_meters)")
        }
        // Both until the proxy restarts: what was lost upstream stays lost.
        if statistics.internalBroker.droppedWhileWatched > 0 {
            list.append("internal_broker_dropped: the meters' broker dropped \(statistics.internalBroker.droppedWhileWatched) messages since this proxy started (max_queued_messages)")
        }
        if statistics.receivedQoS0 > 0 {
            list.append("readings_qos0: \(statistics.receivedQoS0) readings arrived at QoS 0 since this proxy started (set the meters' MQTT QoS to 1)")
        }
        return list
    }

    /// Nothing waits in the journal or for a PUBACK.
    var isDrained: Bool { journal.unacknowledgedCount == 0 && !journal.hasUnflushed }

    func journalStatus(at now: MonotonicInstant, wallClock: Instant) -> JournalStatus {
        var pressure = backPressureTotal
        if let since = backPressureSince { pressure += now.seconds(since: since) }
        return JournalStatus(
            bytes: journal.bytes, messages: journal.unacknowledgedCount,
            oldestUnacknowledgedSeconds: journal.oldestUnacknowledgedMilliseconds.map {
                max(0, Double(wallClock.epochMillis - $0) / 1000)
            },
            backPressureSeconds: pressure, backPressureActive: backPressureSince != nil,
            replayedAtStart: recovery.records, cutAtStart: recovery.droppedBytes,
            corruptAtStart: recovery.corruptRecords)
    }

    // MARK: Internals

    private func take(_ out: ProcessOutput, now: Instant) {
        // A meter's announcements (its discovery message, its Home Assistant
        // configs) come together, before its reading: they go through the
        // ledger as one, in their place.
        var i = 0
        let messages = out.messages
        while i < messages.count {
            let message = messages[i]
            guard message.kind == .discovery || message.kind == .homeAssistant, let id = message.device else {
                append(message, now: now)
                if message.kind == .data, let id = message.device, statistics.lastSeen.updateValue(now, forKey: id) == nil {
                    log.info("meter_heard", ["meter": id, "topic": message.topic, "detail": "its first reading since the start"])
                }
                i += 1
                continue
            }
            var discovery: Outgoing?
            var configs: [Outgoing]?
            while i < messages.count, messages[i].device == id,
                  messages[i].kind == .discovery || messages[i].kind == .homeAssistant {
                if messages[i].kind == .discovery {
                    discovery = messages[i]
                    // The internal copy goes at once, whatever the central broker's state.
                    if settings.discoveryOnInternal { publishInternal(messages[i]) }
                } else {
                    configs = (configs ?? []) + [messages[i]]
                }
                i += 1
            }
            announce(id: id, discovery: discovery, homeAssistant: configs, now: now)
        }
        for drop in out.drops { record(drop) }
    }

    private func announce(id: String, discovery: Outgoing?, homeAssistant: [Outgoing]?, now: Instant) {
        guard ledgerReady else {
            var waiting = parked[id] ?? (nil, nil)
            if let discovery { waiting.discovery = discovery }
            if let homeAssistant { waiting.homeAssistant = homeAssistant }
            parked[id] = waiting
            return
        }
        // Newer than what waited for a converging pass still under way.
        parked[id] = nil
        guard mayAnnounce(id, quiet: false, heard: true) else { return }
        append(ledger.plan(id: id, discovery: discovery, homeAssistant: homeAssistant, forced: false,
                           program: programs.running(id), origin: origin), now: now)
    }

    // MARK: Instances (`instance:`)

    /// Another instance's retained status (`<root>/status/<instance>`, or
    /// `<root>/status` for a proxy without one, `instance` `""`).
    ///
    /// The meters this proxy hears and that instance owned are taken over
    /// at once when the rule (`mayAnnounce`) lets it.
    func peerStatus(instance: String, _ status: PeerStatus?, now: Instant) {
        ownership.peerStatus(instance: instance, status)
        takeOver(from: instance, now: now)
    }

    /// A message on `MeterSilence.filter` about meter `id`: its owner says it
    /// stopped hearing it (nil: cleared, it hears it again). The meter is
    /// taken over at once when the rule lets it.
    func meterSilence(id: String, _ silence: MeterSilence?, now: Instant) {
        ownership.maxMeters = settings.maxMeters
        if let owner = ownership.meterSilence(id: id, silence, instance: programs.instance) { takeOver(from: owner, now: now) }
    }

    /// What this proxy publishes (retained, on `MeterSilence.topic`) so that
    /// the broker says which of the meters it announces it has not heard for
    /// longer than their allowed silence (since `started` for those it never
    /// heard): the declarations that changed, with every status.
    func silenceChanges(now: Instant, started: Instant) -> [(topic: String, payload: [UInt8])] {
        guard ledgerReady else { return [] }
        var silent: Set<String> = []
        for (id, meter) in ledger.meters where meter.discovery != nil && meter.owner == programs.instance {
            guard let allowed = programs.silenceAllowed(for: id), allowed > 0 else { continue }
            let seen = statistics.lastSeen[id] ?? started
            if (now.epochMillis - seen.epochMillis) / 1000 > Int64(allowed) { silent.insert(id) }
        }
        let changes = ownership.declare(silent: silent)
        return changes.declare.map { id in
            (MeterSilence.topic(root: programs.rootTopic, id: id),
             MeterSilence(instance: programs.instance, lastSeen: statistics.lastSeen[id]?.iso8601).payload)
        } + changes.clear.map { (MeterSilence.topic(root: programs.rootTopic, id: $0), []) }
    }

    private func takeOver(from instance: String, now: Instant) {
        guard ledgerReady else { return }
        for id in engine.seenDevices where ledger.meters[id]?.isOwned(byOtherThan: programs.instance) == true
            && (ledger.meters[id]?.owner ?? "") == instance && !programs.isExcluded(id) && mayAnnounce(id, quiet: true, heard: true) {
            let current = engine.announcements(for: id)
            append(ledger.plan(id: id, discovery: current.first { $0.kind == .discovery },
                               homeAssistant: current.filter { $0.kind == .homeAssistant }, forced: false,
                               program: programs.running(id), origin: origin), now: now)
        }
    }

    /// Whether this proxy announces `id` now (`ProxyOwnership`); a meter
    /// taken over is logged, one owned elsewhere counted and logged unless `quiet`.
    private func mayAnnounce(_ id: String, quiet: Bool, heard: Bool) -> Bool {
        let meter = ledger.meters[id]
        let owner = meter?.isOwned(byOtherThan: programs.instance) == true ? meter?.owner ?? "" : nil
        switch ownership.verdict(owner: owner, meter: id, heard: heard) {
        case .mine:
            return true
        case .untouched:
            return false
        case .takenOver(let owner, let reason):
            log.info("meter_taken_over", ["meter": id, "from": owner.isEmpty ? "(no instance)" : owner, "reason": reason])
            return true
        case .ownedElsewhere(let owner):
            if !quiet {
                statistics.ownedElsewhere += 1
                log.limited(.info, key: "owned_elsewhere", "meter_owned_elsewhere", [
                    "meter": id, "owner": owner.isEmpty ? "(no instance)" : owner,
                    "detail": "its readings are forwarded; it is announced by its owner until that one stops hearing it",
                ])
            }
            return false
        }
    }

    private func append(_ messages: [Outgoing], now: Instant) {
        for message in messages { append(message, now: now) }
    }

    private func append(_ message: Outgoing, now: Instant) {
        if message.kind == .discovery, let id = message.device { noteAnnounced(id, present: !message.payload.isEmpty) }
        message.payload.withUnsafeBytes { payload in
            var topic = message.topic
            topic.withUTF8 { topicBytes in
                _ = journal.append(topic: UnsafeRawBufferPointer(topicBytes), payload: payload, retain: message.retain,
                                   kind: JournalKind.of(message.kind), now: now.epochMillis)
            }
        }
        // A withdrawn meter's discovery goes on the internal broker too
        // (the engine's own discovery messages were copied when they came).
        if message.kind == .discovery && message.payload.isEmpty && settings.discoveryOnInternal { publishInternal(message) }
    }

    private static func write(_ bytes: [UInt8], to path: String) -> Bool {
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        var written = 0
        while written < bytes.count {
            let n = bytes.withUnsafeBytes { Glibc.write(fd, $0.baseAddress! + written, $0.count - written) }
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { return false }
            written += n
        }
        return true
    }

    private func noteAnnounced(_ id: String, present: Bool) {
        if present {
            if announced.count < settings.maxMeters, announced.insert(id).inserted { announcedChanged = true }
        } else if announced.remove(id) != nil {
            announcedChanged = true
        }
    }

    /// The copy of a discovery message on the internal broker (see the type's
    /// documentation for when and why). A failure loses only this copy: the
    /// central one is in the journal, and the meter's next announcement sends
    /// the copy again.
    private func publishInternal(_ message: Outgoing) {
        guard let transport else { return }
        var failure: MQTTError?
        message.payload.withUnsafeBytes { payload in
            do throws(MQTTError) {
                try transport.publishInternal(topic: message.topic, payload: payload, retain: message.retain)
            } catch {
                failure = error
            }
        }
        if let failure {
            log.limited(.warning, key: "publish.internal", "discovery_copy_failed", [
                "broker": "internal", "topic": message.topic, "error": "\(failure)",
            ])
        }
    }

    private func record(_ drop: Drop) {
        statistics.countDrop(drop.reason.rawValue)
        // Junk the rules expect (half of a real capture) is not news.
        let level: LogLevel = switch drop.reason {
        case .allZero, .duplicate, .excluded: .debug
        default: .warning
        }
        log.limited(level, key: "drop.\(drop.reason.rawValue)", "input_dropped", [
            "reason": drop.reason.rawValue, "topic": drop.topic, "detail": drop.detail,
        ])
    }

    /// Writes the journal buffer now (also from `endOfIteration`, where it runs
    /// when nothing is buffered too: `flush` does the interval fsync). Before
    /// the internal connection is closed at shutdown, whose DISCONNECT write
    /// would carry queued PUBACKs along.
    func writeJournal() {
        do {
            try journal.flush()
            if journalBroken {
                journalBroken = false
                log.info("journal_writable_again")
                transport?.setInternalWrites(true)
            }
        } catch {
            // The PUBACKs of what is in the buffer must not leave: hold the
            // internal broker's writes (and reading, below) until a write works.
            if !journalBroken {
                journalBroken = true
                log.error("journal_write_failed", ["error": "\(error)", "action": "holding acknowledgements and input until it works"])
            }
            transport?.setInternalWrites(false)
        }
    }

    private func decideBackPressure(at now: MonotonicInstant) {
        let full = journalBroken || journal.bytes >= readLimit
        if full, backPressureSince == nil {
            beginBackPressure(at: now)
        } else if !full, let since = backPressureSince, journal.bytes <= readLimit / 10 * 9 {
            backPressureSince = nil
            let seconds = now.seconds(since: since)
            backPressureTotal += seconds
            transport?.setInternalReading(true)
            log.info("back_pressure_off", ["journal_bytes": String(journal.bytes), "seconds": String(Int(seconds.rounded()))])
        }
    }

    private func beginBackPressure(at now: MonotonicInstant) {
        guard backPressureSince == nil else { return }
        backPressureSince = now
        transport?.setInternalReading(false)
        log.warning("back_pressure_on", [
            "journal_bytes": String(journal.bytes), "journal_max_bytes": String(journal.maxBytes),
            "read_limit_bytes": String(readLimit),
            "detail": "not reading the internal broker; it queues readings in this client's session",
        ])
    }

    /// Hands journal records to the central connection while it is connected
    /// and the window has room.
    private func pump(at now: MonotonicInstant) {
        guard centralConnected, let transport else { return }
        if let until = holdUntil {
            guard now >= until else { return }
            holdUntil = nil
        }
        while inFlight.count < settings.window {
            // A record to send again: an owned copy (the journal lends its
            // records only until its next read).
            var again: JournalRecord?
            if let record = retryRecord {
                again = record
                retryRecord = nil
            } else if !retries.isEmpty, let i = retries.firstIndex(where: { $0.due <= now }) {
                again = retries.remove(at: i).record
            }
            if let record = again {
                let sent = record.topic.withUnsafeBytes { topic in
                    record.payload.withUnsafeBytes { payload in
                        hand(sequence: record.sequence, kind: record.kind, retain: record.retain, topic: topic, payload: payload,
                             transport: transport)
                    }
                }
                guard sent else {
                    retryRecord = record
                    return
                }
                continue
            }
            let next: BorrowedJournalRecord?
            do {
                next = try journal.nextBorrowed()
            } catch {
                log.limited(.error, key: "journal.read", "journal_read_failed", ["error": "\(error)"])
                return
            }
            guard let record = next else { return }
            // The record's bytes are the journal's until its next read: published from there, not copied.
            guard hand(sequence: record.sequence, kind: record.kind, retain: record.retain, topic: record.topic,
                       payload: record.payload, transport: transport) else {
                retryRecord = record.copied
                return
            }
        }
    }

    /// Publishes one record; false when the transport could not take it for a
    /// passing reason (it is sent again at the next pump).
    private func hand(sequence: UInt64, kind: UInt8, retain: Bool, topic: UnsafeRawBufferPointer, payload: UnsafeRawBufferPointer,
                      transport: any ProxyTransport) -> Bool {
        do throws(MQTTError) {
            let mid = try transport.publishCentral(topic: topic, payload: payload, retain: retain)
            inFlight.insert(mid, sequence: sequence, kind: kind)
            busy = true
        } catch where !error.isPermanent {
            log.limited(.warning, key: "publish.retry", "publish_deferred", ["topic": String(decoding: topic, as: UTF8.self), "error": "\(error)"])
            return false
        } catch {
            // Never sendable (a payload over the broker's limit): named, counted, removed.
            journal.acknowledge(sequence)
            statistics.countDrop(ProxyStatistics.publishFailed)
            log.limited(.error, key: "publish.failed", "publish_failed", ["topic": String(decoding: topic, as: UTF8.self), "error": "\(error)"])
        }
        return true
    }
}

extension MQTTError {
    /// Sending the same message again cannot succeed.
    var isPermanent: Bool {
        switch code {
        case .invalidArgument, .payloadTooLarge, .malformedUTF8, .notSupported: true
        default: false
        }
    }
}
