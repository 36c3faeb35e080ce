#if canImport(Glibc)
import Glibc
#endif
import JSON
import Journal
import MQTT
import RuleEngine
import SiteSettings

/// `kpm33b-proxy`: meters' broker → rule engine → journal → central broker.
///
/// Runs on a `ServiceHost`: its `EventLoop` on the main thread drives both
/// broker connections, the timers and the `ProxyCore`, which does the work:
/// a message is read, transformed and appended to the journal in one
/// callback; the journal is written at the end of the loop iteration, before
/// the loop writes the message's PUBACK (see `ProxyCore` for why that loses
/// nothing). The host owns the signals, the reload's compile and the
/// shutdown phases; this type keeps the proxy's subscriptions, its status and
/// its state files. Loop thread only.
public final class ProxyService {
    /// How long SIGTERM tries to deliver the journal before stopping; what is
    /// left stays in the journal for the next start.
    static let drainSeconds = 3.0

    public struct Configuration: Sendable {
        public var service: ServiceOptions
        /// The journal lives in `<stateDirectory>/journal`.
        public var stateDirectory: String

        public init(service: ServiceOptions, stateDirectory: String) {
            self.service = service
            self.stateDirectory = stateDirectory
        }
    }

    let configuration: Configuration
    let log: Log
    let started = Instant.now()
    let statusTopic: String
    let homeAssistantStatusTopic: String?
    /// Our own echo on it ends the read-back of the central broker's retained
    /// announcements (see `DiscoveryLedger`).
    let readBackTopic: String
    /// Fixed until a restart, like the broker settings.
    let sharedSubscriptionGroup: String?
    /// `<root>/status`: the statuses of every instance are it and its subtopics.
    let peerStatusRoot: String
    let host: ServiceHost
    let loop: EventLoop
    let internalClient: MQTTClient
    let centralClient: MQTTClient
    let core: ProxyCore

    // Loop thread only, below.
    private var statusTimer: LoopTimer?
    private var statusIntervalSeconds: Int
    private var subscriptions: Set<String>
    private var utcOffsetSeconds = 0
    /// `forwarded` and when, at the previous status: the per-minute rate.
    private var previousStatus: (forwarded: Int, at: MonotonicInstant)?
    private let counterStore: CounterStore
    private let resetRequests: CounterResetRequests
    /// `engine.countersVersion` when the counters were last saved; nil: save.
    private var countersSaved: Int?
    /// The read-back of this connection: its token, and the deadline after
    /// which the proxy goes on with what arrived.
    private var readBack: (token: String, timer: LoopTimer?)?
    private var readBackCount = 0
    /// The forwarding rate of systemd's status line.
    let forwardedPerMinute = PerMinute()

    public init(site loaded: Site, configuration: Configuration, log: Log) throws(ServiceError) {
        self.configuration = configuration
        self.log = log
        let program = loaded.programs
        let site = program.siteConfig
        let settings = loaded.settings
        statusTopic = program.statusTopic
        statusIntervalSeconds = settings.proxy.statusIntervalSeconds
        subscriptions = Set(program.subscriptions)
        homeAssistantStatusTopic = site.homeAssistant.enabled ? "\(site.homeAssistant.discoveryPrefix)/status" : nil
        readBackTopic = "\(program.rootTopic)/proxy/read-back"
        sharedSubscriptionGroup = settings.proxy.sharedSubscriptionGroup
        peerStatusRoot = "\(program.rootTopic)/status"

        let options = configuration.service
        let will = MQTTWill(topic: statusTopic, payload: Array(#"{"state":"offline"}"#.utf8), qos: 1, retain: true)
        let journalSettings = JournalSettings(settings.proxy)
        let journal: Journal
        let directory = configuration.stateDirectory.hasSuffix("/")
            ? configuration.stateDirectory + "journal" : configuration.stateDirectory + "/journal"
        do {
            guard FileSystem.makeDirectories(configuration.stateDirectory, mode: 0o700) else {
                throw ServiceError("cannot create the state directory \(configuration.stateDirectory): \(String(cString: strerror(errno)))")
            }
            journal = try Journal(directory: directory, maxBytes: journalSettings.maxBytes,
                                  segmentBytes: journalSettings.segmentBytes, fsync: journalSettings.fsync)
        } catch {
            throw ServiceError("cannot open the journal in \(directory): \(error)")
        }
        // The window of unacknowledged messages is the core's; libmosquitto
        // needs no limit of its own.
        host = try ServiceHost(name: "kpm33b-proxy", service: .proxy, clientID: "kpm33b-proxy", site: loaded, options: options, log: log,
                               internal: .init(cleanSession: false),
                               central: .init(cleanSession: false, will: will, unlimitedInflight: true))
        loop = host.loop
        internalClient = host.internalClient
        centralClient = host.centralClient
        core = ProxyCore(programs: program, journal: journal,
                         settings: .init(maxPayloadBytes: settings.proxy.maxPayloadBytes,
                                         discoveryOnInternal: settings.proxy.discoveryOnInternal,
                                         maxMeters: settings.proxy.maxMeters),
                         origin: Origin(name: "kpm33b-proxy", version: ServiceVersion.current), log: log)
        counterStore = CounterStore(directory: configuration.stateDirectory)
        resetRequests = CounterResetRequests(stateDirectory: configuration.stateDirectory)
        core.transport = self
        core.deadLetters = DeadLetters(directory: configuration.stateDirectory)
        core.announcedFile = (configuration.stateDirectory.hasSuffix("/") ? configuration.stateDirectory : configuration.stateDirectory + "/") + "announced"
        core.refreshDeadLetters()
        let loaded: CounterStore.Loaded
        do { loaded = try counterStore.load(now: Instant.now()) } catch { throw ServiceError(error.message) }
        if let aside = loaded.movedAside {
            core.stateProblem = "state_corrupt: the counters database was damaged (\(aside.reason)); moved to \(aside.path), counters start afresh"
            log.warning("state_corrupt", ["file": counterStore.path, "reason": aside.reason, "moved_to": aside.path,
                                          "action": "starting without saved counters"])
        }
        if let imported = loaded.imported {
            log.info("counters_imported", ["file": counterStore.legacyPath, "counters": String(imported.count),
                                           "into": counterStore.path, "renamed_to": imported.renamedTo ?? "(not renamed)"])
        }
        if let problem = loaded.problem {
            core.stateProblem = core.stateProblem ?? "state_corrupt: \(problem)"
            log.warning("counters_not_loaded", ["detail": problem])
        }
        core.engine.restore(loaded.counters)
        countersSaved = core.engine.countersVersion
        takeResetRequests()
        let recovery = journal.recovery
        for note in recovery.notes { log.warning("journal_repaired", ["detail": note]) }
        log.info("journal_opened", [
            "directory": directory, "records": String(recovery.records), "segments": String(recovery.segments),
            "torn_tail_bytes": String(recovery.tornTailBytes), "corrupt_records": String(recovery.corruptRecords),
            "max_bytes": String(journalSettings.maxBytes), "fsync": journalSettings.fsyncName,
        ])
    }

    // MARK: Running

    /// Runs until SIGTERM or SIGINT went through drain → offline → finished
    /// (SIGHUP reloads). Returns the exit status.
    public func run() -> Int32 {
        host.run(self)
    }

    /// The once-a-second chores: the UTC offset, the core's tick, `accept-reset`
    /// requests, the counters, the dead letters and the announced meters.
    func everySecond() {
        refreshUTCOffset()
        core.tick(now: now())
        takeResetRequests()
        saveCounters()
        core.refreshDeadLetters()
        core.saveAnnounced()
    }

    /// The wall clock for the engine, with the local UTC offset refreshed once
    /// a second (localtime_r per message would cost more than the engine).
    private func now() -> Instant {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        return Instant(epochMillis: Int64(ts.tv_sec) * 1000 + Int64(ts.tv_nsec) / 1_000_000, utcOffsetSeconds: utcOffsetSeconds)
    }

    func refreshUTCOffset() {
        utcOffsetSeconds = Instant.now().utcOffsetSeconds
    }

    // MARK: Connections

    func wireInternal() {
        internalClient.onMessage = { [unowned self] message in
            // Only the broker's own topics start with '$' (clients cannot publish them).
            if message.topic.utf8.first == UInt8(ascii: "$") {
                core.internalBrokerFigure(topic: message.topic, payload: message.payload)
                return
            }
            if message.qos == 0 { core.receivedAtQoS0(topic: message.topic) }
            core.received(topic: message.topic, payload: message.payload, now: now())
        }
        // Only discovery copies are published here (MQTT 5 reports a refusal;
        // with 3.1.1 the broker drops a refused message without a word).
        internalClient.onPublishRejected = { [unowned self] _, _, reason in
            log.limited(.error, key: "publish.internal.rejected", "discovery_copy_refused", [
                "broker": "internal", "reason": reason,
                "hint": "the internal broker's ACL must let this account write the discovery topics, or set proxy.discovery_on_internal: false",
            ])
        }
    }

    /// After a central connection: read back what the broker retains of our
    /// announcements (it may have lost them in a restart without
    /// persistence), then converge (see `DiscoveryLedger`); the status and
    /// the health configs again.
    func centralConnected() {
        core.readBackStarted()
        readBackCount += 1
        readBack = ("\(centralClient.options.clientID) \(readBackCount)", nil)
        publishStatus(state: "online")
        publishHealthConfigs()
    }

    func wireCentral() {
        centralClient.onSubscriptionsSettled = { [unowned self] in
            // The broker queued the retained messages of our subscriptions
            // before it handles this publish: its echo comes after them.
            guard let pending = readBack, pending.timer == nil else { return }
            do {
                _ = try centralClient.publish(topic: readBackTopic, payload: Array(pending.token.utf8), qos: 1, retain: false)
            } catch {
                log.warning("read_back_failed", ["error": "\(error)"])
            }
            readBack?.timer = loop.schedule(after: 15) { [unowned self] in
                guard readBack?.token == pending.token else { return }
                log.warning("read_back_incomplete", [
                    "detail": "no echo on \(readBackTopic) within 15 s; going on with the retained messages that arrived",
                    "hint": "the central broker's ACL must let the proxy publish and subscribe to \(readBackTopic)",
                ])
                finishReadBack()
            }
        }
        centralClient.onMessage = { [unowned self] message in
            if message.topic == readBackTopic {
                if let pending = readBack, message.payload.elementsEqual(pending.token.utf8) { finishReadBack() }
            } else if message.topic == homeAssistantStatusTopic {
                guard host.phases.isRunning, message.payload.elementsEqual("online".utf8) else { return }
                log.info("home_assistant_online", ["detail": "announcing the meters again"])
                core.announceHomeAssistant(now: now())
                publishHealthConfigs()
            } else if message.topic == peerStatusRoot || message.topic.hasPrefix(peerStatusRoot + "/") {
                guard message.topic != statusTopic else { return }
                let instance = message.topic == peerStatusRoot ? "" : String(message.topic.dropFirst(peerStatusRoot.count + 1))
                if !instance.contains("/") { core.peerStatus(instance: instance, payload: Array(message.payload), now: now()) }
            } else {
                core.observed(topic: message.topic, payload: Array(message.payload))
            }
        }
        centralClient.onPublished = { [unowned self] mid in core.acknowledged(mid) }
        centralClient.onPublishRejected = { [unowned self] mid, code, reason in core.rejected(mid, code: code, reason: reason, at: .now()) }
    }

    /// The meters' topics, shared with the other proxies of the group
    /// (`proxy.shared_subscription_group`): the broker hands each message to one.
    func shared(_ filter: String) -> String {
        sharedSubscriptionGroup.map { "$share/\($0)/\(filter)" } ?? filter
    }

    private func finishReadBack() {
        readBack?.timer?.cancel()
        readBack = nil
        core.readBackFinished(now: now())
    }

    // MARK: Status

    func scheduleStatus() {
        statusTimer?.cancel()
        statusTimer = loop.repeating(every: Double(statusIntervalSeconds)) { [unowned self] in
            if host.phases.isRunning { publishStatus(state: "online") }
        }
    }

    /// Publishes the status document (retained, QoS 1, outside the journal:
    /// a status is only worth its latest value); returns its message id.
    @discardableResult
    func publishStatus(state: String) -> Int32? {
        guard centralClient.isConnected else { return nil }
        let wallClock = now()
        let monotonic = MonotonicInstant.now()
        let statistics = core.statistics
        var perMinute = 0
        if let previous = previousStatus, monotonic.seconds(since: previous.at) > 0.5 {
            perMinute = Int((Double(statistics.forwarded - previous.forwarded) * 60 / monotonic.seconds(since: previous.at)).rounded())
        }
        previousStatus = (statistics.forwarded, monotonic)
        let program = core.program
        let online = statistics.lastSeen.count { id, seen in
            let allowed = Int64(program.silenceAllowed(for: id) ?? 3600)
            return (wallClock.epochMillis - seen.epochMillis) / 1000 <= allowed
        }
        let document = statistics.document(
            state: state, version: ServiceVersion.current, started: started, now: wallClock,
            journal: core.journalStatus(at: monotonic, wallClock: wallClock),
            metersOnline: online, forwardedPerMinute: max(0, perMinute), problems: core.problems,
            readBack: core.readBack).withLogLinesDropped(log)
        do {
            let mid = try centralClient.publish(topic: statusTopic, payload: document.serialized(), qos: 1, retain: true)
            core.statusPublished(mid)
            return mid
        } catch {
            log.limited(.error, key: "publish.status", "status_publish_failed", ["error": "\(error)"])
            return nil
        }
    }

    /// The proxy's own device in Home Assistant (`HealthDevice.proxy`), retained;
    /// at every central connection and every Home Assistant `online`.
    private func publishHealthConfigs() {
        guard core.program.siteConfig.homeAssistant.enabled, centralClient.isConnected else { return }
        for config in HealthDevice.proxy.configs(program: core.program.first, statusTopic: statusTopic, origin: core.origin) {
            do {
                core.statusPublished(try centralClient.publish(topic: config.topic, payload: config.payload, qos: 1, retain: true))
            } catch {
                log.limited(.error, key: "publish.health", "health_config_publish_failed", ["topic": config.topic, "error": "\(error)"])
            }
        }
    }

    // MARK: Reload

    /// A reloaded site (compiled off the loop by the host): what applies live.
    func applyLive(_ loaded: Site) {
        let program = loaded.programs
        let proxy = loaded.settings.proxy
        core.settings.maxPayloadBytes = proxy.maxPayloadBytes
        core.settings.discoveryOnInternal = proxy.discoveryOnInternal
        core.settings.maxMeters = proxy.maxMeters
        core.journal.maxBytes = proxy.journalMaxBytes
        if proxy.statusIntervalSeconds != statusIntervalSeconds {
            statusIntervalSeconds = proxy.statusIntervalSeconds
            scheduleStatus()
        }
        for filter in program.subscriptions where !subscriptions.contains(filter) {
            subscriptions.insert(filter)
            do {
                try internalClient.subscribe(shared(filter), qos: 1)
            } catch {
                log.error("cannot_subscribe", ["filter": filter, "error": "\(error)"])
            }
        }
        core.reload(program, now: now())
        countersSaved = nil  // a new engine counts its versions afresh
    }

    /// `kpm33b-proxy accept-reset`: forget the counters asked for, so that the
    /// meter's next reading starts them afresh.
    private func takeResetRequests() {
        for request in resetRequests.take() {
            let forgotten = core.engine.forgetCounters(device: request.id, field: request.field)
            log.info("counter_reset_accepted", [
                "meter": request.id, "field": request.field ?? "(all)",
                "detail": forgotten.isEmpty ? "nothing was remembered for it" : "the next reading starts \(forgotten.joined(separator: ",")) afresh",
            ])
        }
    }

    /// Writes the guarded counters that changed (once a second at most, one
    /// bounded batch; `all`: every batch, at shutdown). A kill loses at most
    /// the last second of them: the next reading is then checked against a
    /// slightly older value.
    func saveCounters(all: Bool = false) {
        let version = core.engine.countersVersion
        guard version != countersSaved else { return }
        do {
            let counters = core.engine.counters
            while try !counterStore.save(counters) {
                guard all else { return }  // the rest next second
            }
            countersSaved = version
        } catch {
            log.limited(.error, key: "counters.save", "counters_not_saved", ["error": error.message])
        }
    }
}

extension ProxyService: ProxyTransport {
    var isCentralConnected: Bool { centralClient.isConnected }

    func publishCentral(topic: UnsafeRawBufferPointer, payload: UnsafeRawBufferPointer, retain: Bool) throws(MQTTError) -> Int32 {
        try centralClient.publish(topicBytes: topic, payload: payload, qos: 1, retain: retain)
    }

    func setInternalReading(_ enabled: Bool) {
        if enabled { internalClient.resumeReading() } else { internalClient.pauseReading() }
    }

    func setInternalWrites(_ enabled: Bool) {
        if enabled { internalClient.releaseWrites() } else { internalClient.holdWrites() }
    }

    func publishInternal(topic: String, payload: UnsafeRawBufferPointer, retain: Bool) throws(MQTTError) {
        try internalClient.publish(topic: topic, payload: payload, qos: 1, retain: retain)
    }
}
