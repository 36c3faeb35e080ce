import Journal
import Clock
import MQTT
import RuleEngine

/// The proxy's logic: messages from the internal broker go through the rule
/// engine into the journal; the journal's records go to the central broker,
/// a window at a time, and leave it with their PUBACK.
///
/// Pure of threads and sockets: the service calls it on its loop thread with
/// events (a message, a PUBACK, a connection change, the end of a loop
/// iteration, a tick). It routes them to its parts — `ProxyDelivery` (the
/// journal window, back-pressure, retries, refusals), `ProxyAnnouncements`
/// (ledger, read-back, convergence, ownership), the guarded counters
/// (`ProxyCounters`) — and carries out the actions they return against the
/// journal, the transport and the log. A reading takes no action: the
/// engine's clean messages go into the journal as they come, and from there
/// the delivery hands them to the central connection.
///
/// What the proxy appends by itself (converging the announcements after a
/// read-back or a reload, Home Assistant's restart) waits for room in the
/// journal like the internal broker's messages (`ProxyDelivery.readLimit`).
final class ProxyCore {
    struct Settings {
        var maxPayloadBytes = 65_536
        /// Journal records handed to the central connection and not yet acknowledged.
        var window = 256
        /// After a reconnect, new records wait this long at most for the resent ones.
        var resendGraceSeconds = 10.0
        /// Under load, how often the acknowledged position is written.
        var acknowledgementWriteSeconds = 0.05
        /// Copy discovery messages to the internal broker (`proxy.discovery_on_internal`).
        var discoveryOnInternal = true
        /// The most meters with state (`proxy.max_meters`), in every table.
        var maxMeters = 250_000
        /// At shutdown, how long the guarded counters' last writes are waited for.
        var counterFlushSeconds = 10.0

        var delivery: ProxyDelivery.Settings {
            .init(window: window, resendGraceSeconds: resendGraceSeconds,
                  acknowledgementWriteSeconds: acknowledgementWriteSeconds, maxPayloadBytes: maxPayloadBytes)
        }
        var announcements: ProxyAnnouncements.Settings {
            .init(discoveryOnInternal: discoveryOnInternal, maxMeters: maxMeters)
        }
    }

    let log: Log
    let origin: Origin
    /// The service that owns this core (or a test's recorder, which the test
    /// keeps beside it). Not weak: a weak reference would give the service a
    /// side table, and every retain and release of it the runtime's slow path
    /// (see `ServiceHost.service`); unowned(unsafe), as its owner outlives the
    /// core, and a checked load costs a retain and a release every iteration.
    unowned(unsafe) var transport: (any ProxyTransport)?
    var settings: Settings {
        didSet {
            delivery.settings = settings.delivery
            announcements.settings = settings.announcements
        }
    }
    /// Every pack's engine; with one pack, that engine alone (no routing).
    private(set) var engine: PackRouter
    let delivery: ProxyDelivery
    let announcements: ProxyAnnouncements
    /// The guarded counters on disk; nil: not kept (tests without them).
    private(set) var counters: ProxyCounters?
    /// The state database was found damaged at start-up (`loadCounters`).
    private(set) var stateProblem: String?
    /// The core's own figures; `statistics` adds its parts'.
    private var counted = ProxyStatistics()
    private var output = ProcessOutput()
    /// The clocks of the latest event, for what the core does on its own.
    private var lastWallClock = Instant(epochMillis: 0)
    private var lastIteration = MonotonicInstant(nanoseconds: 0)

    init(programs: ProgramSet, journal: Journal, settings: Settings, origin: Origin, log: Log, clientID: String = "kpm33b-proxy") {
        let engine = PackRouter(programs: programs, origin: origin, maxMeters: settings.maxMeters)
        self.engine = engine
        self.settings = settings
        self.origin = origin
        self.log = log
        delivery = ProxyDelivery(journal: journal, settings: settings.delivery)
        announcements = ProxyAnnouncements(engine: engine, settings: settings.announcements, origin: origin, clientID: clientID)
    }

    var programs: ProgramSet { engine.programs }
    var journal: Journal { delivery.journal }

    /// The figures of the status document.
    var statistics: ProxyStatistics { counted.adding(delivery.counts, ownedElsewhere: announcements.ownedElsewhere) }

    // MARK: Start and stop

    /// Start-up: the guarded counters saved by the last run, kept from now on.
    func loadCounters(_ counters: ProxyCounters, now: Instant) throws(ServiceError) {
        self.counters = counters
        let loaded = try counters.load(into: engine, now: now)
        stateProblem = loaded.problem
        perform(loaded.actions)
    }

    /// At shutdown: every counter, the announced meters and the acknowledged position on disk.
    func saveState() {
        if let counters { perform(counters.flush(engine, seconds: settings.counterFlushSeconds)) }
        perform(announcements.saveAnnounced())
        perform(delivery.persistAcknowledgements())
    }

    // MARK: Events from the internal broker

    /// A reading arrived at QoS 0 (before `received`): counted, and warned
    /// about now and then (`ProxyStatistics.receivedAtQoS0`).
    func receivedAtQoS0(topic: String) {
        if let action = counted.receivedAtQoS0(topic: topic) { perform(action) }
    }

    /// A `$SYS` figure of the internal broker (`InternalBrokerFigures`).
    func internalBrokerFigure(topic: String, payload: UnsafeRawBufferPointer) {
        if let action = counted.internalBrokerFigure(topic: topic, payload: payload) { perform(action) }
    }

    /// A message from the internal broker, borrowed for the call.
    func received(topic: String, payload: UnsafeRawBufferPointer, now: Instant) {
        counted.received += 1
        if payload.count > settings.maxPayloadBytes {
            return perform(counted.tooLarge(topic: topic, bytes: payload.count, limit: settings.maxPayloadBytes))
        }
        lastWallClock = now
        let before = journal.bytes
        output.removeAll()
        engine.process(topic: topic, payload: payload, now: now, into: &output)
        take(&output, now: now)
        let actions = delivery.appended(bytes: journal.bytes - before)
        if !actions.isEmpty { perform(actions) }
    }

    func internalConnectionChanged(_ connected: Bool) { counted.internalConnected = connected }

    // MARK: Events from the central broker

    /// The central connection came or went; when it came, its subscriptions
    /// are on the way and the ledger is read afresh (`ProxyAnnouncements`).
    func centralConnectionChanged(_ connected: Bool, at now: MonotonicInstant) {
        counted.centralConnected = connected
        delivery.centralConnectionChanged(connected, at: now)
        if connected { announcements.centralConnected() }
    }

    /// The central broker settled the subscriptions: the read-back's token goes out.
    func subscriptionsSettled(at now: MonotonicInstant) {
        perform(announcements.subscriptionsSettled(at: now))
    }

    /// A retained (or live) message on one of the ledger's filters.
    func observed(topic: String, payload: [UInt8]) {
        announcements.observed(topic: topic, payload: payload)
    }

    /// A message on the read-back topic: its echo ends the read-back.
    func readBackEcho(_ payload: UnsafeRawBufferPointer, now: Instant) {
        lastWallClock = now
        perform(announcements.readBackEcho(payload))
        announcePending()
    }

    /// Every retained message is in (also without the echo, in tests).
    func readBackFinished(now: Instant) {
        lastWallClock = now
        perform(announcements.readBackFinished())
        announcePending()
    }

    /// Home Assistant came online: every meter's entity configs again, one
    /// message per meter in the device form (through the journal).
    func announceHomeAssistant(now: Instant) {
        lastWallClock = now
        announcements.homeAssistantOnline()
        announcePending()
    }

    /// Another instance's retained status (`<root>/status/<instance>`, or
    /// `<root>/status` for a proxy without one, `instance` `""`), parsed;
    /// nil: gone, or not a status.
    func peerStatus(instance: String, _ status: PeerStatus?, now: Instant) {
        lastWallClock = now
        perform(announcements.peerStatus(instance: instance, status))
    }

    /// Another instance declared meter `id` silent (nil: cleared), parsed.
    func meterSilence(id: String, _ silence: MeterSilence?, now: Instant) {
        lastWallClock = now
        perform(announcements.meterSilence(id: id, silence))
    }

    /// This proxy's silence declarations that changed (`ProxyAnnouncements.silenceChanges`).
    func silenceChanges(now: Instant, started: Instant) -> [(topic: String, payload: [UInt8])] {
        announcements.silenceChanges(now: now, started: started)
    }

    /// The central broker acknowledged `mid`.
    func acknowledged(_ mid: Int32) {
        let actions = delivery.acknowledged(mid, wallClock: lastWallClock)
        if !actions.isEmpty { perform(actions) }
    }

    /// A message outside the journal the service published (a status): its PUBACK is no record's.
    func statusPublished(_ mid: Int32) { delivery.statusPublished(mid) }

    // MARK: The loop

    /// The end of a loop iteration, before any socket is written: the journal
    /// buffer goes to disk, back-pressure is decided, records go out, and
    /// waiting announcements as the journal has room.
    func endOfIteration(at now: MonotonicInstant) {
        lastIteration = now
        let actions = delivery.endOfIteration(at: now, publisher: transport)
        if !actions.isEmpty { perform(actions) }
        if announcements.hasPending { announcePending() }
    }

    /// Writes the journal buffer now: before the internal connection is
    /// closed at shutdown, whose DISCONNECT write would carry queued PUBACKs along.
    func writeJournal() {
        perform(delivery.writeJournal())
    }

    /// Once a second: split sets that never completed expire, an overdue
    /// read-back goes on with what arrived, the state on disk is brought up
    /// to date (counters, announced meters, the dead letters' count).
    func tick(now: Instant) {
        lastWallClock = now
        output.removeAll()
        engine.expire(now: now, into: &output)
        take(&output, now: now)
        perform(announcements.tick(at: lastIteration))
        announcePending()
        if let counters {
            perform(counters.takeResetRequests(engine))
            perform(counters.save(engine))
        }
        delivery.refreshDeadLetters()
        perform(announcements.saveAnnounced())
    }

    /// SIGHUP compiled new programs (every pack): they run from the next message on.
    func reload(_ programs: ProgramSet, now: Instant) {
        lastWallClock = now
        // The old engine's last changes go to disk first: the new one reports only its own.
        if let counters { perform(counters.save(engine)) }
        let saved = engine.counters
        let heard = engine.heard
        engine = PackRouter(programs: programs, origin: origin, maxMeters: settings.maxMeters)
        // The guarded counters carry over: a reload must not let a glitch through.
        let unclaimed = engine.restore(saved)
        counters?.engineReplaced(unclaimed: unclaimed)
        // And when each meter was heard: the status's meters and their silence.
        engine.restoreHeard(heard)
        log.info("rules_reloaded", ["pack": programs.packName, "routes": programs.routeNames.joined(separator: ",")])
        announcements.reload(engine: engine)
        announcePending()
    }

    // MARK: Status

    /// What needs an operator now, one line each (the status's `problems`,
    /// the health device's problem sensor); empty when all is well.
    var problems: [String] {
        var list: [String] = []
        if let stateProblem { list.append(stateProblem) }
        if let limit = engine.meterLimit, limit.isReached {
            list.append("meter_limit: \(limit.maximum) meters known, new ones are dropped (proxy.max_meters)")
        }
        if delivery.deadLetterCount > 0 {
            list.append("dead_letters: \(delivery.deadLetterCount) record(s) the central broker refused for good; kpm33b-proxy dead-letters list|replay|discard")
        }
        if delivery.retryCount > 0 {
            list.append("publish_refused: \(delivery.retryCount) record(s) refused for a passing reason, sent again after a back-off")
        }
        if let readBack = announcements.readBack, !readBack.complete {
            list.append("read_back_incomplete: \(readBack.seen) of \(readBack.announced) announced meters read back from the central broker (its max_queued_messages?)")
        }
        let ledger = announcements.ledger
        if ledger.overflowed > 0 {
            list.append("meter_limit: the central broker holds announcements of more than \(ledger.maxMeters) meters; \(ledger.overflowed) not read back (proxy.max_meters)")
        }
        // Both until the proxy restarts: what was lost upstream stays lost.
        if counted.internalBroker.droppedWhileWatched > 0 {
            list.append("internal_broker_dropped: the meters' broker dropped \(counted.internalBroker.droppedWhileWatched) messages since this proxy started (max_queued_messages)")
        }
        if counted.receivedQoS0 > 0 {
            list.append("readings_qos0: \(counted.receivedQoS0) readings arrived at QoS 0 since this proxy started (set the meters' MQTT QoS to 1)")
        }
        return list
    }

    // MARK: Carrying out

    /// Works through the waiting announcements while the journal is under
    /// its read limit; the rest waits for the next iteration.
    private func announcePending() {
        while journal.bytes < delivery.readLimit, let actions = announcements.nextPending() { perform(actions) }
    }

    private func perform(_ actions: [ProxyAction]) {
        for action in actions { perform(action) }
    }

    /// Carries out what a part decided.
    private func perform(_ action: ProxyAction) {
        switch action {
        case .internalReading(let enabled): transport?.setInternalReading(enabled)
        case .internalWrites(let enabled): transport?.setInternalWrites(enabled)
        case .append(let message): append(message, now: lastWallClock)
        case .publishInternal(let message): publishInternal(message)
        case .publishCentral(let topic, let payload): publishCentral(topic: topic, payload: payload)
        case .log(let event, let limit): log.emit(event, limit: limit)
        }
    }

    /// `out` is the core's own `output`, taken in place (inout: no copy of
    /// its arrays; nothing `take` calls touches `output`).
    private func take(_ out: inout ProcessOutput, now: Instant) {
        // A meter's announcements (its discovery message, its Home Assistant
        // configs) come together, before its reading: they go through the
        // ledger as one, in their place.
        // The messages are read in place, from the array's own storage: no
        // copy of an `Outgoing`, with its references, per reading (`Array`'s
        // subscript hands out a copy of the element even to read one field,
        // and so does passing one by value).
        out.messages.withUnsafeBufferPointer { messages in
            var i = 0
            while i < messages.count {
                let kind = messages[i].kind
                guard kind == .discovery || kind == .homeAssistant, let id = messages[i].device else {
                    append(messages.baseAddress! + i, now: now)
                    if kind == .data, !out.heard.isEmpty, let id = messages[i].device, out.heard.contains(id) {
                        log.info("meter_heard", ["meter": id, "topic": messages[i].topic, "detail": "its first reading since the start"])
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
                    } else {
                        configs = (configs ?? []) + [messages[i]]
                    }
                    i += 1
                }
                perform(announcements.engineAnnounced(id: id, discovery: discovery, homeAssistant: configs))
            }
        }
        for drop in out.drops {
            if let action = counted.dropped(drop, logged: log.level <= .debug) { perform(action) }
        }
    }

    private func append(_ message: Outgoing, now: Instant) {
        withUnsafePointer(to: message) { append($0, now: now) }
    }

    /// `message` is read where it is (the engine's output, which nothing
    /// here changes), not copied.
    private func append(_ message: UnsafePointer<Outgoing>, now: Instant) {
        message.pointee.topicBytes.withUnsafeBytes { topic in
            message.pointee.payload.withUnsafeBytes { payload in
                _ = journal.append(topic: topic, payload: payload, retain: message.pointee.retain,
                                   kind: JournalKind.of(message.pointee.kind), now: now.epochMillis)
            }
        }
        // One iteration can append megabytes: a meter's first reading brings
        // its announcements along, and libmosquitto 2.0.11 reads as many
        // packets at a time as it has messages queued, whatever the loop's
        // batch. Past `unflushedLimit` the buffer is written at once, still
        // before this iteration writes to any socket (PUBACKs included), so
        // it never holds more than that and one record.
        if journal.unflushedBytes >= Self.unflushedLimit { perform(delivery.writeJournal()) }
    }

    /// The most bytes the journal's write buffer holds before an append writes it out.
    static let unflushedLimit = 128 << 10

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
}
