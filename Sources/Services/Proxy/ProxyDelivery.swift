import Journal
import Clock
import MQTT
import RuleEngine

/// The journal's side of the proxy: records go to the central broker a
/// window at a time and leave the journal with their PUBACK; a refused one
/// is sent again after a back-off or dead-lettered; a full journal (or one
/// that cannot be written) stops the reading of the internal broker.
///
/// A state machine on the loop thread: events in, actions out (`ProxyAction`:
/// back-pressure, held writes, log lines). The records themselves go from the
/// journal's memory to the `CentralPublisher`: no action, no copy per record.
///
/// ## Nothing accepted is lost
/// What a message brought is only *appended* to the journal's memory buffer.
/// `endOfIteration` writes that buffer to the segment file (write(2): in the
/// page cache, so it survives the process being killed), and only after it
/// returned does the loop write the PUBACKs of those messages (`EventLoop`,
/// step 5). A SIGKILL before the write leaves the messages unacknowledged at
/// the internal broker, which sends them again to our persistent session;
/// after it, they are on disk and are sent at the next start. If the write
/// fails (disk full), the internal broker's writes are held and reading
/// stops until it succeeds.
///
/// ## Back-pressure: a hard bound
/// The journal never holds more than `maxBytes`. Reading the internal broker,
/// which keeps queueing in our persistent session, stops as soon as the
/// journal reaches `readLimit`: `maxBytes` less the headroom one more message
/// can need (`readHeadroom`). It stops *during* a read, after the message
/// that reached it (`MQTTClient.pauseReading` ends libmosquitto's read
/// there), so what was read and acknowledged is never dropped and one
/// message at most follows the decision. It reads again once the central
/// broker's acknowledgements brought the journal under 90 % of `readLimit`.
final class ProxyDelivery {
    struct Settings {
        /// Journal records handed to the central connection and not yet
        /// acknowledged; fewer when the connection sends fewer before it
        /// waits for acknowledgements (`CentralPublisher.sendWindow`: 20 from
        /// a default Mosquitto over MQTT 5), so that the rest wait here, in
        /// the journal, rather than in libmosquitto's queue.
        var window = 256
        /// After a reconnect, libmosquitto sends its unacknowledged messages
        /// again; new ones wait until those are acknowledged, or this long.
        var resendGraceSeconds = 10.0
        /// Under load, how often the acknowledged position is written (one
        /// pwrite); the first iteration without traffic (no reading, no record
        /// handed over or acknowledged: at the latest the loop's next timer,
        /// within a second) writes it at once. A crash sends again at most
        /// this much of what was acknowledged.
        var acknowledgementWriteSeconds = 0.05
        /// The largest message from the internal broker (`proxy.max_payload_bytes`).
        var maxPayloadBytes = 65_536
    }

    /// What the delivery counted (the status document's figures); `publishFailed`:
    /// records the transport could never send (`ProxyStatistics.publishFailed`).
    struct Counts: Equatable {
        var forwarded = 0, announced = 0, deadLettered = 0, refusedRetried = 0, publishFailed = 0
    }

    let journal: Journal
    var settings: Settings
    private(set) var counts = Counts()
    /// Where records refused for good go (`DeadLetters`); nil: they stay in
    /// the journal and are tried again like passing refusals.
    var deadLetters: DeadLetters?
    /// Letters in the dead-letter file, and its size when they were counted.
    private(set) var deadLetterCount = 0
    private var deadLetterBytes = -1

    /// Central message id → journal sequence and kind, for records handed over.
    private var inFlight = InFlightTable()
    /// Message ids of messages outside the journal (statuses), until acknowledged.
    private var statusInFlight: Set<Int32> = []
    /// Records the broker refused (MQTT 5), by message id, until their
    /// acknowledgement: the reason code and its name.
    private var refusedInFlight: [Int32: (code: Int32, reason: String)] = [:]
    /// Records refused for a passing reason (quota exceeded, server busy, …),
    /// sent again once due; at most a window of them.
    private var retries: [(record: JournalRecord, due: MonotonicInstant)] = []
    /// Refusals so far per sequence, for the back-off; until it is delivered or dead-lettered.
    private var refusals: [UInt64: Int] = [:]
    /// A record handed out by the journal that the transport could not take
    /// for a passing reason (a copy: the journal lends its records only until
    /// the next read): it goes first at the next pump.
    private var retryRecord: JournalRecord?
    private var holdUntil: MonotonicInstant?
    private var centralConnected = false
    private var journalBroken = false
    private var backPressureSince: MonotonicInstant?
    private var backPressureTotal = 0.0
    private var acknowledgementsWritten = MonotonicInstant(nanoseconds: 0)
    /// A message was received, or a record handed over or acknowledged, in
    /// this iteration: under load the acknowledged position is written every
    /// `acknowledgementWriteSeconds`, not in every iteration that only read PUBACKs.
    private var busy = false
    /// The most bytes one message from the internal broker added to the journal.
    private var largestMessageBytes = 0
    /// The loop's clock at the latest iteration: what back-offs count from.
    private var lastIteration = MonotonicInstant(nanoseconds: 0)
    /// The latest pump left the window full with records still waiting for
    /// it: only a PUBACK lets them go (`awaitsWindow`).
    private var windowFull = false

    init(journal: Journal, settings: Settings) {
        self.journal = journal
        self.settings = settings
    }

    // MARK: Events

    /// A message from the internal broker added `bytes` to the journal. Stops
    /// reading at once when the journal reached `readLimit`: the rest of this
    /// read waits in the broker. Empty nearly always (no allocation).
    func appended(bytes: Int) -> [ProxyAction] {
        busy = true
        if bytes > largestMessageBytes { largestMessageBytes = bytes }
        guard journal.bytes >= readLimit else { return [] }
        return beginBackPressure(at: lastIteration)
    }

    func centralConnectionChanged(_ connected: Bool, at now: MonotonicInstant) {
        if connected && !centralConnected && !inFlight.isEmpty {
            holdUntil = now.adding(seconds: settings.resendGraceSeconds)
        }
        centralConnected = connected
    }

    /// The central broker acknowledged `mid`; `wallClock` dates a dead letter.
    func acknowledged(_ mid: Int32, wallClock: Instant) -> [ProxyAction] {
        // The sets are empty nearly always: no hashing then.
        if !statusInFlight.isEmpty && statusInFlight.remove(mid) != nil { return [] }
        guard let record = inFlight.remove(mid) else { return [] }
        var actions: [ProxyAction] = []
        if !refusedInFlight.isEmpty, let refusal = refusedInFlight.removeValue(forKey: mid) {
            actions = refused(record.sequence, code: refusal.code, reason: refusal.reason, wallClock: wallClock)
        } else {
            journal.acknowledge(record.sequence)
            busy = true
            if !refusals.isEmpty { refusals[record.sequence] = nil }
            if record.kind == JournalKind.data { counts.forwarded += 1 } else { counts.announced += 1 }
        }
        if inFlight.isEmpty { holdUntil = nil }
        return actions
    }

    /// MQTT 5: the central broker refused `mid`; the `acknowledged` that
    /// follows decides what becomes of the record (`refused`).
    func rejected(_ mid: Int32, code: Int32, reason: String, at now: MonotonicInstant) {
        guard inFlight[mid] != nil else { return }
        lastIteration = max(lastIteration, now)
        refusedInFlight[mid] = (code, reason)
    }

    /// A message outside the journal (a status) was published: its PUBACK is no record's.
    func statusPublished(_ mid: Int32) { statusInFlight.insert(mid) }

    /// The end of a loop iteration, before any socket is written: the journal
    /// buffer goes to disk, back-pressure is decided, records go out through
    /// `publisher`, and the acknowledged position is written when due.
    func endOfIteration(at now: MonotonicInstant, publisher: (any CentralPublisher)?) -> [ProxyAction] {
        lastIteration = now
        windowFull = false
        var actions = writeJournal()
        decideBackPressure(at: now, into: &actions)
        if let publisher { pump(at: now, publisher: publisher, into: &actions) }
        if !busy || now.seconds(since: acknowledgementsWritten) >= settings.acknowledgementWriteSeconds {
            acknowledgementsWritten = now
            let failed = persistAcknowledgements()
            if !failed.isEmpty { actions += failed }
        }
        busy = false
        return actions
    }

    /// Writes the journal buffer now (also from `endOfIteration`, where it runs
    /// when nothing is buffered too: `flush` does the interval fsync). Before
    /// the internal connection is closed at shutdown, whose DISCONNECT write
    /// would carry queued PUBACKs along.
    func writeJournal() -> [ProxyAction] {
        do {
            try journal.flush()
            guard journalBroken else { return [] }
            journalBroken = false
            return [.log(ConfigEvent(.info, "journal_writable_again")), .internalWrites(true)]
        } catch {
            // The PUBACKs of what is in the buffer must not leave: hold the
            // internal broker's writes (and reading, below) until a write works.
            var actions: [ProxyAction] = []
            if !journalBroken {
                journalBroken = true
                actions.append(.log(ConfigEvent(.error, "journal_write_failed", [
                    ("error", "\(error)"), ("action", "holding acknowledgements and input until it works"),
                ])))
            }
            return actions + [.internalWrites(false)]
        }
    }

    /// Writes the acknowledged position now (also at shutdown).
    func persistAcknowledgements() -> [ProxyAction] {
        do {
            try journal.persistAcknowledgements()
            return []
        } catch {
            return [.log(ConfigEvent(.error, "journal_ack_write_failed", [("error", "\(error)")]), limit: "journal.ack")]
        }
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

    // MARK: State

    /// The headroom one more message from the internal broker can need: its
    /// clean output (about its payload) and a new meter's announcements
    /// (64 KiB allowed), or twice the most one message brought so far;
    /// at most half the journal.
    var readHeadroom: Int {
        min(journal.maxBytes / 2, max(settings.maxPayloadBytes + (64 << 10), 2 * largestMessageBytes))
    }

    /// The journal size at which reading stops (see the type's documentation).
    var readLimit: Int { journal.maxBytes - readHeadroom }

    /// Reading is stopped for want of room in the journal (or a failed write).
    var isBackPressureActive: Bool { backPressureSince != nil }

    /// Records refused for a passing reason, waiting for their back-off.
    var retryCount: Int { retries.count }

    /// After `endOfIteration`: the window is full and records wait for it,
    /// so the next PUBACK is what lets the delivery go on.
    var awaitsWindow: Bool { windowFull }

    /// Nothing waits in the journal or for a PUBACK.
    var isDrained: Bool { journal.unacknowledgedCount == 0 && !journal.hasUnflushed }

    func journalStatus(at now: MonotonicInstant, wallClock: Instant) -> JournalStatus {
        var pressure = backPressureTotal
        if let since = backPressureSince { pressure += now.seconds(since: since) }
        let recovery = journal.recovery
        return JournalStatus(
            bytes: journal.bytes, messages: journal.unacknowledgedCount,
            oldestUnacknowledgedSeconds: journal.oldestUnacknowledgedMilliseconds.map {
                max(0, Double(wallClock.epochMillis - $0) / 1000)
            },
            backPressureSeconds: pressure, backPressureActive: backPressureSince != nil,
            replayedAtStart: recovery.records, cutAtStart: recovery.droppedBytes,
            corruptAtStart: recovery.corruptRecords)
    }

    // MARK: Refusals

    /// Reason codes that sending the same message again cannot change: not
    /// authorized, topic name invalid, packet too large, payload format invalid.
    static let permanentRefusals: Set<Int32> = [0x87, 0x90, 0x95, 0x99]

    /// No refusal is silently final. One for good goes to the dead letters
    /// (and then leaves the journal); any other (quota exceeded 0x97, server
    /// busy 0x89, unspecified 0x80, …) is sent again after a back-off of 1 s
    /// doubling to 60 s, the record staying in the journal meanwhile — as a
    /// permanent one does when the dead-letter file cannot take it.
    private func refused(_ sequence: UInt64, code: Int32, reason: String, wallClock: Instant) -> [ProxyAction] {
        let record: JournalRecord
        do {
            guard let read = try journal.record(sequence) else { return [] }
            record = read
        } catch {
            // Unreadable: it stays in the journal, sent again at the next start.
            return [.log(ConfigEvent(.error, "journal_read_failed", [("sequence", String(sequence)), ("error", "\(error)")]))]
        }
        var actions: [ProxyAction] = []
        let topic = String(decoding: record.topic, as: UTF8.self)
        let code16 = "0x" + String(code, radix: 16)
        if Self.permanentRefusals.contains(code), let deadLetters {
            let letter = DeadLetters.Letter(time: wallClock.iso8601, sequence: sequence, code: Int(code), reason: reason,
                                            topic: topic, retain: record.retain, kind: record.kind, payload: record.payload)
            do {
                if try deadLetters.append(letter) {
                    journal.acknowledge(sequence)
                    refusals[sequence] = nil
                    counts.deadLettered += 1
                    deadLetterCount += 1
                    return [.log(ConfigEvent(.error, "publish_dead_lettered", [
                        ("code", code16), ("reason", reason), ("topic", topic), ("sequence", String(sequence)),
                        ("hint", "fix the central broker (its ACL, its limits), then: kpm33b-proxy dead-letters replay"),
                    ]))]
                }
                actions.append(.log(ConfigEvent(.error, "dead_letters_full", [
                    ("path", deadLetters.path), ("detail", "kept in the journal and tried again; replay or discard the dead letters"),
                ]), limit: "dead_letters.full"))
            } catch {
                actions.append(.log(ConfigEvent(.error, "dead_letter_write_failed", [("error", error.message)]), limit: "dead_letters.write"))
            }
        }
        let attempts = (refusals[sequence] ?? 0) + 1
        refusals[sequence] = attempts
        let delay = min(60.0, Double(1 << min(attempts - 1, 6)))
        retries.append((record, lastIteration.adding(seconds: delay)))
        counts.refusedRetried += 1
        actions.append(.log(ConfigEvent(.warning, "publish_refused", [
            ("code", code16), ("reason", reason), ("topic", topic), ("sequence", String(sequence)),
            ("retry_in_s", String(Int(delay))), ("attempt", String(attempts)),
        ]), limit: "publish.refused"))
        return actions
    }

    // MARK: Back-pressure

    private func decideBackPressure(at now: MonotonicInstant, into actions: inout [ProxyAction]) {
        let full = journalBroken || journal.bytes >= readLimit
        if full, backPressureSince == nil {
            actions += beginBackPressure(at: now)
        } else if !full, let since = backPressureSince, journal.bytes <= readLimit / 10 * 9 {
            backPressureSince = nil
            let seconds = now.seconds(since: since)
            backPressureTotal += seconds
            actions.append(.internalReading(true))
            actions.append(.log(ConfigEvent(.info, "back_pressure_off", [
                ("journal_bytes", String(journal.bytes)), ("seconds", String(Int(seconds.rounded()))),
            ])))
        }
    }

    private func beginBackPressure(at now: MonotonicInstant) -> [ProxyAction] {
        guard backPressureSince == nil else { return [] }
        backPressureSince = now
        return [.internalReading(false), .log(ConfigEvent(.warning, "back_pressure_on", [
            ("journal_bytes", String(journal.bytes)), ("journal_max_bytes", String(journal.maxBytes)),
            ("read_limit_bytes", String(readLimit)),
            ("detail", "not reading the internal broker; it queues readings in this client's session"),
        ]))]
    }

    // MARK: Handing records over

    /// Hands journal records to the central connection while it is connected
    /// and the window has room.
    private func pump(at now: MonotonicInstant, publisher: any CentralPublisher, into actions: inout [ProxyAction]) {
        guard centralConnected else { return }
        if let until = holdUntil {
            guard now >= until else { return }
            holdUntil = nil
        }
        let window = min(settings.window, publisher.sendWindow)
        defer { windowFull = inFlight.count >= window && journal.unacknowledgedCount > inFlight.count }
        while inFlight.count < window {
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
                             publisher: publisher, actions: &actions)
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
                actions.append(.log(ConfigEvent(.error, "journal_read_failed", [("error", "\(error)")]), limit: "journal.read"))
                return
            }
            guard let record = next else { return }
            // The record's bytes are the journal's until its next read: published from there, not copied.
            guard hand(sequence: record.sequence, kind: record.kind, retain: record.retain, topic: record.topic,
                       payload: record.payload, publisher: publisher, actions: &actions) else {
                retryRecord = record.copied
                return
            }
        }
    }

    /// Publishes one record; false when the transport could not take it for a
    /// passing reason (it is sent again at the next pump).
    private func hand(sequence: UInt64, kind: UInt8, retain: Bool, topic: UnsafeRawBufferPointer, payload: UnsafeRawBufferPointer,
                      publisher: any CentralPublisher, actions: inout [ProxyAction]) -> Bool {
        do throws(MQTTError) {
            let mid = try publisher.publishCentral(topic: topic, payload: payload, retain: retain)
            inFlight.insert(mid, sequence: sequence, kind: kind)
            busy = true
        } catch where !error.isPermanent {
            actions.append(.log(ConfigEvent(.warning, "publish_deferred", [
                ("topic", String(decoding: topic, as: UTF8.self)), ("error", "\(error)"),
            ]), limit: "publish.retry"))
            return false
        } catch {
            // Never sendable (a payload over the broker's limit): named, counted, removed.
            journal.acknowledge(sequence)
            counts.publishFailed += 1
            actions.append(.log(ConfigEvent(.error, "publish_failed", [
                ("topic", String(decoding: topic, as: UTF8.self)), ("error", "\(error)"),
            ]), limit: "publish.failed"))
        }
        return true
    }
}
