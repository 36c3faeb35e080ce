#if canImport(Glibc)
import Glibc
#endif
import Clock
import RuleEngine

/// The meters' announcements on the central broker (discovery messages,
/// Home Assistant configs): what the broker retains of them (`ledger`,
/// read back at every central connection through `ProxyReadBack`), what
/// waits for that read-back (parked), and the convergence of everything to
/// what the rules and the site config want, meter by meter as the journal
/// has room (`nextPending`). Which instance announces a meter is
/// `ProxyOwnership`'s rule.
///
/// A state machine on the loop thread: events in, actions out
/// (`ProxyAction`: announcements to append to the journal, copies for the
/// internal broker, log lines); the engine is only read.
final class ProxyAnnouncements {
    struct Settings {
        /// Copy discovery messages to the internal broker (`proxy.discovery_on_internal`).
        var discoveryOnInternal = true
        /// The most meters the ledger and the announced set hold (`proxy.max_meters`).
        var maxMeters = 250_000
    }

    let origin: Origin
    var settings: Settings {
        didSet {
            ledger.maxMeters = settings.maxMeters
            ownership.maxMeters = settings.maxMeters
        }
    }
    /// The core's engine (replaced on reload): the meters heard and their announcements.
    var engine: PackRouter
    var programs: ProgramSet { engine.programs }

    /// What the central broker retains of our announcements (see `DiscoveryLedger`).
    private(set) var ledger: DiscoveryLedger
    /// The ledger holds the broker's retained messages: announcements go
    /// through it. Until then they wait in `parked`, the latest per meter.
    private(set) var ledgerReady = false
    private var parked: [String: (discovery: Outgoing?, homeAssistant: [Outgoing]?)] = [:]
    /// Meters whose announcements are to be brought to what the rules want
    /// (`forced`: sent even if the broker has them), from `pendingHead` on.
    private var pending: [(id: String, forced: Bool)] = []
    private var pendingHead = 0
    /// The read-back of this central connection (its token and deadline).
    private(set) var readBackRound: ProxyReadBack
    /// What the last read-back saw of `announced` (nil before the first).
    private(set) var readBack: (complete: Bool, announced: Int, seen: Int)?
    /// Which instance announces which meter.
    private(set) var ownership: ProxyOwnership
    /// Announcements not sent: the meter is another instance's.
    private(set) var ownedElsewhere = 0

    /// The meters whose discovery message this proxy has on the central
    /// broker, as far as it knows: persisted (`announcedFile`), so that a
    /// read-back can tell whether it saw everything (`readBack`).
    private(set) var announced: Set<String> = []
    private var announcedChanged = false
    /// `<state>/announced`, one id a line; nil: not kept (tests without one).
    var announcedFile: String? {
        didSet { loadAnnounced() }
    }

    init(engine: PackRouter, settings: Settings, origin: Origin, clientID: String) {
        self.engine = engine
        self.settings = settings
        self.origin = origin
        let programs = engine.programs
        ledger = DiscoveryLedger(discoveryFilters: programs.discoverySubscriptions,
                                 discoveryPrefix: programs.siteConfig.homeAssistant.discoveryPrefix,
                                 originName: origin.name, instance: programs.instance, maxMeters: settings.maxMeters)
        readBackRound = ProxyReadBack(rootTopic: programs.rootTopic, clientID: clientID)
        ownership = ProxyOwnership(maxMeters: settings.maxMeters)
    }

    // MARK: Events

    /// A meter's announcements from the engine (its discovery message, its
    /// Home Assistant configs), which come together before its reading.
    /// The internal copy of the discovery message goes at once, whatever
    /// the central broker's state; the rest through the ledger, or parked.
    func engineAnnounced(id: String, discovery: Outgoing?, homeAssistant: [Outgoing]?) -> [ProxyAction] {
        var actions: [ProxyAction] = []
        if let discovery, settings.discoveryOnInternal { actions.append(.publishInternal(discovery)) }
        guard ledgerReady else {
            var waiting = parked[id] ?? (nil, nil)
            if let discovery { waiting.discovery = discovery }
            if let homeAssistant { waiting.homeAssistant = homeAssistant }
            parked[id] = waiting
            return actions
        }
        // Newer than what waited for a converging pass still under way.
        parked[id] = nil
        guard mayAnnounce(id, quiet: false, heard: true, into: &actions) else { return actions }
        append(ledger.plan(id: id, discovery: discovery, homeAssistant: homeAssistant, forced: false,
                           program: programs.running(id), origin: origin), into: &actions)
        return actions
    }

    /// Home Assistant came online: every meter's entity configs again, one
    /// message per meter in the device form (`nextPending`).
    func homeAssistantOnline() {
        guard ledgerReady, programs.siteConfig.homeAssistant.enabled else { return }
        pending += knownMeters().map { ($0, true) }
    }

    /// The central connection is (re)established: a new read-back begins,
    /// the ledger is read afresh.
    func centralConnected() {
        readBackRound.connected()
        ledger.reset()
        ledgerReady = false
        // The pass in progress planned against the old ledger; the next read-back starts a new one.
        pending.removeAll()
        pendingHead = 0
    }

    /// The central broker settled the subscriptions: the read-back's token goes out.
    func subscriptionsSettled(at now: MonotonicInstant) -> [ProxyAction] {
        readBackRound.subscriptionsSettled(at: now)
    }

    /// A retained (or live) message on one of `ledger.filters`.
    func observed(topic: String, payload: [UInt8]) {
        ledger.observe(topic: topic, payload: payload)
    }

    /// A message on the read-back topic: its echo ends the read-back.
    func readBackEcho(_ payload: UnsafeRawBufferPointer) -> [ProxyAction] {
        readBackRound.echo(payload) ? readBackFinished() : []
    }

    /// Once a second: without the echo in time, the read-back goes on with what arrived.
    func tick(at monotonic: MonotonicInstant) -> [ProxyAction] {
        guard readBackRound.timedOut(at: monotonic) else { return [] }
        let topic = readBackRound.topic
        return [.log(ConfigEvent(.warning, "read_back_incomplete", [
            ("detail", "no echo on \(topic) within \(Int(ProxyReadBack.timeoutSeconds)) s; going on with the retained messages that arrived"),
            ("hint", "the central broker's ACL must let the proxy publish and subscribe to \(topic)"),
        ]))] + readBackFinished()
    }

    /// Every retained message is in: converge (`nextPending`), then announce
    /// as things happen.
    ///
    /// Whether the read-back saw everything is judged against what this
    /// proxy knows it announced (`announced`), not against the broker's
    /// word: a broker that drops retained messages on the way (its
    /// `max_queued_messages`) or lost them cannot make it look complete. A
    /// meter now announced by another instance was taken over: not missing.
    func readBackFinished() -> [ProxyAction] {
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
        var actions: [ProxyAction] = [.log(ConfigEvent(.info, "discovery_read_back", [
            ("meters", String(ledger.meters.count)), ("detail", wasReady ? "again" : "converging"),
            ("complete", String(complete)), ("announced", String(announced.count)), ("seen", String(seen)),
        ]))]
        if !complete {
            actions.append(.log(ConfigEvent(.warning, "read_back_incomplete", [
                ("announced", String(announced.count)), ("seen", String(seen)), ("not_read_back", String(ledger.overflowed)),
                ("detail", "the central broker did not hand back every retained announcement of this proxy; a missing meter heard since the start is announced again, the others when they are next heard"),
                ("hint", "the broker drops what exceeds max_queued_messages (see broker/README.md), or lost its retained messages"),
            ])))
        }
        converge()
        return actions
    }

    /// Another instance's status (nil: gone): the meters this proxy hears
    /// and that instance owned are taken over at once when the rule lets it.
    func peerStatus(instance: String, _ status: PeerStatus?) -> [ProxyAction] {
        ownership.peerStatus(instance: instance, status)
        return takeOver(from: instance)
    }

    /// A message on `MeterSilence.filter` about meter `id`: its owner says it
    /// stopped hearing it (nil: cleared, it hears it again). The meter is
    /// taken over at once when the rule lets it.
    func meterSilence(id: String, _ silence: MeterSilence?) -> [ProxyAction] {
        guard let owner = ownership.meterSilence(id: id, silence, instance: programs.instance) else { return [] }
        return takeOver(from: owner)
    }

    /// What this proxy publishes (retained, on `MeterSilence.topic`) so that
    /// the broker says which of the meters it announces it has not heard for
    /// longer than their allowed silence (the engine's `lastHeard`; since
    /// `started` for those it never heard): the declarations that changed.
    func silenceChanges(now: Instant, started: Instant) -> [(topic: String, payload: [UInt8])] {
        guard ledgerReady else { return [] }
        var silent: Set<String> = []
        for (id, meter) in ledger.meters where meter.discovery != nil && meter.owner == programs.instance {
            guard let allowed = programs.silenceAllowed(for: id), allowed > 0 else { continue }
            let seen = engine.lastHeard(id) ?? started
            if (now.epochMillis - seen.epochMillis) / 1000 > Int64(allowed) { silent.insert(id) }
        }
        let changes = ownership.declare(silent: silent)
        return changes.declare.map { id in
            (MeterSilence.topic(root: programs.rootTopic, id: id),
             MeterSilence(instance: programs.instance, lastSeen: engine.lastHeard(id)?.iso8601).payload)
        } + changes.clear.map { (MeterSilence.topic(root: programs.rootTopic, id: $0), []) }
    }

    /// The meters this proxy hears that `instance` owned, when the rule lets it take them over.
    private func takeOver(from instance: String) -> [ProxyAction] {
        guard ledgerReady else { return [] }
        var actions: [ProxyAction] = []
        for id in engine.seenDevices where ledger.meters[id]?.isOwned(byOtherThan: programs.instance) == true
            && (ledger.meters[id]?.owner ?? "") == instance && !programs.isExcluded(id)
            && mayAnnounce(id, quiet: true, heard: true, into: &actions) {
            let current = engine.announcements(for: id)
            append(ledger.plan(id: id, discovery: current.first { $0.kind == .discovery },
                               homeAssistant: current.filter { $0.kind == .homeAssistant }, forced: false,
                               program: programs.running(id), origin: origin), into: &actions)
        }
        return actions
    }

    /// SIGHUP: the core's new engine. Entities of renamed or removed fields
    /// and of disabled groups go, new ones come, an excluded meter is
    /// cleared: for every meter (`nextPending`).
    func reload(engine: PackRouter) {
        self.engine = engine
        if ledgerReady { converge() }
    }

    // MARK: Converging

    /// Meters wait to be brought to what the rules want.
    var hasPending: Bool { pendingHead < pending.count }

    /// The next waiting meter's announcements; nil when none waits. The core
    /// asks while the journal is under its read limit, so that thousands of
    /// meters' announcements never push it past its bound.
    func nextPending() -> [ProxyAction]? {
        guard pendingHead < pending.count else { return nil }
        let (id, forced) = pending[pendingHead]
        pendingHead += 1
        if pendingHead == pending.count {
            pending.removeAll()
            pendingHead = 0
        }
        var actions: [ProxyAction] = []
        if forced { announceAgain(id, into: &actions) } else { converge(id, into: &actions) }
        return actions
    }

    /// Brings every meter the broker or the engine knows to what the rules
    /// and the site config want: missing or changed announcements go out,
    /// what no longer exists is removed, an excluded meter is cleared.
    private func converge() {
        pending += knownMeters().map { ($0, false) }
    }

    private func converge(_ id: String, into actions: inout [ProxyAction]) {
        let homeAssistant = programs.siteConfig.homeAssistant.enabled
        let waiting = parked.removeValue(forKey: id)
        guard mayAnnounce(id, quiet: waiting == nil, heard: waiting != nil || engine.hasSeen(id), into: &actions) else { return }
        if programs.isExcluded(id) || !programs.isValidDeviceID(id) {
            append(ledger.clearAll(id: id, program: programs.running(id), origin: origin), into: &actions)
            return
        }
        // A meter heard since the start: the engine has its announcements; one only retained: the rules.
        let current = engine.announcements(for: id)
        let discovery = waiting?.discovery ?? current.first { $0.kind == .discovery }
        let configs = !homeAssistant ? []
            : engine.hasSeen(id) ? current.filter { $0.kind == .homeAssistant } : programs.homeAssistantConfigs(for: id, origin: origin)
        append(ledger.plan(id: id, discovery: discovery, homeAssistant: configs, forced: false,
                           program: programs.running(id), origin: origin), into: &actions)
    }

    /// Home Assistant came online: the meter's entity configs again.
    private func announceAgain(_ id: String, into actions: inout [ProxyAction]) {
        guard programs.siteConfig.homeAssistant.enabled, !programs.isExcluded(id), programs.isValidDeviceID(id),
              mayAnnounce(id, quiet: true, heard: engine.hasSeen(id), into: &actions) else { return }
        append(ledger.plan(id: id, discovery: nil, homeAssistant: programs.homeAssistantConfigs(for: id, origin: origin),
                           forced: true, program: programs.running(id), origin: origin), into: &actions)
    }

    /// The meters the broker holds announcements of, those seen since the
    /// start, and those waiting to be announced, in a stable order.
    private func knownMeters() -> [String] {
        var ids = Set(ledger.meters.keys)
        ids.formUnion(engine.seenDevices)
        ids.formUnion(parked.keys)
        return ids.sorted()
    }

    /// Whether this proxy announces `id` now (`ProxyOwnership`); a meter
    /// taken over is logged, one owned elsewhere counted and logged unless `quiet`.
    private func mayAnnounce(_ id: String, quiet: Bool, heard: Bool, into actions: inout [ProxyAction]) -> Bool {
        let meter = ledger.meters[id]
        let owner = meter?.isOwned(byOtherThan: programs.instance) == true ? meter?.owner ?? "" : nil
        switch ownership.verdict(owner: owner, meter: id, heard: heard) {
        case .mine:
            return true
        case .untouched:
            return false
        case .takenOver(let owner, let reason):
            actions.append(.log(ConfigEvent(.info, "meter_taken_over", [
                ("meter", id), ("from", owner.isEmpty ? "(no instance)" : owner), ("reason", reason),
            ])))
            return true
        case .ownedElsewhere(let owner):
            if !quiet {
                ownedElsewhere += 1
                actions.append(.log(ConfigEvent(.info, "meter_owned_elsewhere", [
                    ("meter", id), ("owner", owner.isEmpty ? "(no instance)" : owner),
                    ("detail", "its readings are forwarded; it is announced by its owner until that one stops hearing it"),
                ]), limit: "owned_elsewhere"))
            }
            return false
        }
    }

    /// Announcements into the journal; a withdrawn meter's empty discovery
    /// goes on the internal broker too (the engine's own discovery messages
    /// were copied when they came).
    private func append(_ messages: [Outgoing], into actions: inout [ProxyAction]) {
        for message in messages {
            if message.kind == .discovery, let id = message.device { noteAnnounced(id, present: !message.payload.isEmpty) }
            actions.append(.append(message))
            if message.kind == .discovery && message.payload.isEmpty && settings.discoveryOnInternal {
                actions.append(.publishInternal(message))
            }
        }
    }

    // MARK: The announced meters on disk

    private func noteAnnounced(_ id: String, present: Bool) {
        if present {
            if announced.count < settings.maxMeters, announced.insert(id).inserted { announcedChanged = true }
        } else if announced.remove(id) != nil {
            announcedChanged = true
        }
    }

    /// Reads `announcedFile` (at most `maxMeters` ids).
    private func loadAnnounced() {
        guard let path = announcedFile, let bytes = FileSystem.read(path) else { return }
        for line in bytes.split(separator: 0x0A) where announced.count < settings.maxMeters {
            let id = String(decoding: line, as: UTF8.self)
            if programs.isValidDeviceID(id) { announced.insert(id) }
        }
    }

    /// Writes `announcedFile` when it changed (once a second from the core):
    /// a temporary file renamed over it.
    func saveAnnounced() -> [ProxyAction] {
        guard announcedChanged, let path = announcedFile else { return [] }
        announcedChanged = false
        let text = announced.sorted().joined(separator: "\n") + "\n"
        let temporary = path + ".tmp"
        guard Self.write(Array(text.utf8), to: temporary), rename(temporary, path) == 0 else {
            announcedChanged = true
            return [.log(ConfigEvent(.error, "announced_not_saved", [("path", path)]), limit: "announced.save")]
        }
        return []
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
}
