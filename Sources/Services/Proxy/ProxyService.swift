#if canImport(Glibc)
import Glibc
#endif
import JSON
import Journal
import Clock
import MQTT
import RuleEngine
import SiteSettings
import Synchronization

/// `kpm33b-proxy`: meters' broker → rule engine → journal → central broker.
///
/// One `EventLoop` on the main thread drives both broker connections, the
/// timers and the `ProxyCore`, which does the work: a message is read,
/// transformed and appended to the journal in one callback; the journal is
/// written at the end of the loop iteration, before the loop writes the
/// message's PUBACK (see `ProxyCore` for why that loses nothing). Signals
/// arrive on a dispatch queue (`SignalWatcher`) and are posted to the loop.
public final class ProxyService: @unchecked Sendable {
    /// How long SIGTERM tries to deliver the journal before stopping; what is
    /// left stays in the journal for the next start.
    static let drainSeconds = 3.0
    /// How long the offline status may take to be acknowledged at shutdown.
    static let offlineAckSeconds = 1.0

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
    /// Fixed until a restart, like the broker settings.
    let sharedSubscriptionGroup: String?
    /// `<root>/status`: the statuses of every instance are it and its subtopics.
    let peerStatusRoot: String
    let loop: EventLoop
    let internalClient: MQTTClient
    let centralClient: MQTTClient
    let core: ProxyCore

    // Loop thread only, below.
    private var statusTimer: LoopTimer?
    private var statusIntervalSeconds: Int
    private var subscriptions: Set<String>
    private var centralWasConnected = false
    private var internalWasConnected = false
    private var utcOffsetSeconds = 0
    private var shutdown: Shutdown?
    /// `forwarded` and when, at the previous status: the per-minute rate.
    private var previousStatus: (forwarded: Int, at: MonotonicInstant)?
    /// `READY=1`, the watchdog and `STATUS=` under systemd (`ProxyService+systemd`).
    private var systemd: SystemdSupervision?

    private struct Shutdown {
        var drainDeadline: MonotonicInstant
        var offlineMid: Int32?
        var offlineDeadline: MonotonicInstant?
    }

    /// The one cross-thread fact: a stop signal arrived (signal queue).
    private let stopping = Atomic<Bool>(false)

    public init(site loaded: Site, configuration: Configuration, log: Log) throws(ServiceError) {
        self.configuration = configuration
        self.log = log
        let programs = loaded.programs
        let site = programs.siteConfig
        let settings = loaded.settings
        statusTopic = programs.statusTopic
        statusIntervalSeconds = settings.proxy.statusIntervalSeconds
        subscriptions = Set(programs.subscriptions)
        homeAssistantStatusTopic = site.homeAssistant.enabled ? "\(site.homeAssistant.discoveryPrefix)/status" : nil
        sharedSubscriptionGroup = settings.proxy.sharedSubscriptionGroup
        peerStatusRoot = "\(programs.rootTopic)/status"

        let options = configuration.service
        let will = MQTTWill(topic: statusTopic, payload: ProxyStatus(state: "offline").payload, qos: 1, retain: true)
        let internalSettings = try BrokerSettings(settings: settings, broker: "internal", client: "proxy", override: options.internalURL,
                                                  defaultClientID: "kpm33b-proxy", instance: programs.instance, cleanSession: false)
        let centralSettings = try BrokerSettings(settings: settings, broker: "central", client: "proxy", override: options.centralURL,
                                                 defaultClientID: "kpm33b-proxy", instance: programs.instance, cleanSession: false, will: will)
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
        do {
            loop = try EventLoop()
            // The window of unacknowledged messages is the core's; libmosquitto
            // needs no limit of its own.
            var centralOptions = centralSettings.options
            centralOptions.maxInflight = 0
            internalClient = try MQTTClient(loop: loop, endpoint: internalSettings.endpoint, options: internalSettings.options)
            centralClient = try MQTTClient(loop: loop, endpoint: centralSettings.endpoint, options: centralOptions)
        } catch {
            throw ServiceError(error.description)
        }
        core = ProxyCore(programs: programs, journal: journal,
                         settings: .init(maxPayloadBytes: settings.proxy.maxPayloadBytes,
                                         discoveryOnInternal: settings.proxy.discoveryOnInternal,
                                         maxMeters: settings.proxy.maxMeters),
                         origin: Origin(name: "kpm33b-proxy", version: ServiceVersion.current), log: log,
                         clientID: centralSettings.options.clientID)
        core.transport = self
        core.deadLetters = DeadLetters(directory: configuration.stateDirectory)
        core.announcedFile = (configuration.stateDirectory.hasSuffix("/") ? configuration.stateDirectory : configuration.stateDirectory + "/") + "announced"
        core.refreshDeadLetters()
        try core.loadCounters(ProxyCounters(stateDirectory: configuration.stateDirectory), now: Instant.now())
        let recovery = journal.recovery
        for note in recovery.notes { log.warning("journal_repaired", ["detail": note]) }
        log.info("journal_opened", [
            "directory": directory, "records": String(recovery.records), "segments": String(recovery.segments),
            "torn_tail_bytes": String(recovery.tornTailBytes), "corrupt_records": String(recovery.corruptRecords),
            "max_bytes": String(journalSettings.maxBytes), "fsync": journalSettings.fsyncName,
        ])
    }

    // MARK: Running

    /// Runs until SIGTERM or SIGINT, then shuts down cleanly. Returns the exit status.
    public func run() -> Int32 {
        let watcher = SignalWatcher { [self] signal in
            if signal == SIGHUP { reload() } else { requestStop(signal) }
        }
        defer { withExtendedLifetime(watcher) {} }

        refreshUTCOffset()
        systemd = makeSupervision()
        wireCentral()
        wireInternal()
        do {
            for filter in core.programs.subscriptions { try internalClient.subscribe(shared(filter), qos: 1) }
            // The broker's own figures: QoS 0, nothing queued for them while the proxy is away.
            for figure in InternalBrokerFigures.topics { try internalClient.subscribe(figure.topic, qos: 0) }
            if let topic = homeAssistantStatusTopic { try centralClient.subscribe(topic, qos: 1) }
            for filter in core.ledger.filters { try centralClient.subscribe(filter, qos: 1) }
            // The other instances' statuses: who announces which meter (`ProxyCore.mayAnnounce`).
            for filter in [peerStatusRoot, peerStatusRoot + "/+"] { try centralClient.subscribe(filter, qos: 1) }
            // The owners' word on the meters they stopped hearing (`MeterSilence`).
            try centralClient.subscribe(MeterSilence.filter(root: core.programs.rootTopic), qos: 1)
            try centralClient.subscribe(core.readBackRound.topic, qos: 1)
        } catch {
            log.error("cannot_start", ["error": "\(error)"])
            return 1
        }
        centralClient.start()
        internalClient.start()
        loop.addIterationHook { [unowned self] in
            core.endOfIteration(at: .now())
            if shutdown != nil { continueShutdown() }
        }
        loop.repeating(every: 1) { [unowned self] in
            refreshUTCOffset()
            core.tick(now: now())
        }
        scheduleStatus()
        log.info("started", [
            "version": ServiceVersion.current,
            "internal": internalClient.endpoint.description,
            "central": centralClient.endpoint.description,
            "subscriptions": core.programs.subscriptions.joined(separator: ","),
            "status_topic": statusTopic,
            "state_dir": configuration.stateDirectory,
        ])
        systemd?.ready()
        loop.run()

        centralClient.stop()
        core.saveState()
        core.journal.close()
        log.info("stopped", [
            "received": String(core.statistics.received), "forwarded": String(core.statistics.forwarded),
            "journal_messages": String(core.journal.unacknowledgedCount),
        ])
        return 0
    }

    /// The wall clock for the engine, with the local UTC offset refreshed once
    /// a second (localtime_r per message would cost more than the engine).
    private func now() -> Instant {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        return Instant(epochMillis: Int64(ts.tv_sec) * 1000 + Int64(ts.tv_nsec) / 1_000_000, utcOffsetSeconds: utcOffsetSeconds)
    }

    private func refreshUTCOffset() {
        utcOffsetSeconds = Instant.now().utcOffsetSeconds
    }

    private func requestStop(_ signal: Int32) {
        if stopping.exchange(true, ordering: .acquiringAndReleasing) {
            // The journal keeps whatever was not delivered.
            log.warning("second_stop_signal", ["signal": SignalWatcher.name(signal), "detail": "exiting without draining"])
            exit(1)
        }
        log.info("stopping", ["signal": SignalWatcher.name(signal)])
        loop.execute { [self] in beginShutdown() }
    }

    /// Stop taking messages; deliver what the journal holds for a few seconds
    /// (the rest waits there for the next start); publish the offline status.
    private func beginShutdown() {
        guard shutdown == nil else { return }
        systemd?.stopping("delivering the journal for up to \(Int(Self.drainSeconds)) s")
        core.writeJournal()
        internalClient.stop()
        shutdown = Shutdown(drainDeadline: MonotonicInstant.now().adding(seconds: Self.drainSeconds))
    }

    /// From the iteration hook while shutting down.
    private func continueShutdown() {
        guard var state = shutdown else { return }
        let now = MonotonicInstant.now()
        if state.offlineDeadline == nil {
            guard core.isDrained || now >= state.drainDeadline || !centralClient.isConnected else { return }
            if !core.isDrained {
                log.info("journal_kept", ["messages": String(core.journal.unacknowledgedCount),
                                          "detail": "delivered at the next start"])
            }
            state.offlineDeadline = now.adding(seconds: Self.offlineAckSeconds)
            if centralClient.isConnected { state.offlineMid = publishStatus(state: "offline") }
            shutdown = state
        }
        let acknowledged = state.offlineMid.map { core.isStatusAcknowledged($0) } ?? true
        if acknowledged || now >= state.offlineDeadline! {
            if !acknowledged { log.warning("offline_status_not_acknowledged") }
            loop.stop()
        } else {
            // Wake up again soon to check the deadline even if nothing arrives.
            loop.schedule(after: 0.05) {}
        }
    }

    // MARK: Connections

    private func wireInternal() {
        internalClient.onMessage = { [unowned self] message in
            // Only the broker's own topics start with '$' (clients cannot publish them).
            if message.topic.utf8.first == UInt8(ascii: "$") {
                core.internalBrokerFigure(topic: message.topic, payload: message.payload)
                return
            }
            if message.qos == 0 { core.receivedAtQoS0(topic: message.topic) }
            core.received(topic: message.topic, payload: message.payload, now: now())
        }
        internalClient.onConnectionChange = { [unowned self] connected, reason in
            core.internalConnectionChanged(connected)
            systemd?.brokerChanged("internal", connected: connected, reason: reason)
            if connected {
                log.info("connected", ["broker": "internal", "url": internalClient.endpoint.description])
            } else if internalWasConnected {
                log.log(shutdown != nil ? .info : .warning, "disconnected", ["broker": "internal", "reason": reason])
            } else {
                log.limited(.warning, key: "connect.internal", "cannot_connect", ["broker": "internal", "reason": reason])
            }
            internalWasConnected = connected
        }
        internalClient.onSubscriptionRejected = { [unowned self] filter in
            log.error("subscription_refused", ["broker": "internal", "filter": filter])
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

    private func wireCentral() {
        centralClient.onConnectionChange = { [unowned self] connected, reason in
            core.centralConnectionChanged(connected, at: .now())
            systemd?.brokerChanged("central", connected: connected, reason: reason)
            if connected {
                log.info("connected", ["broker": "central", "url": centralClient.endpoint.description])
                // Read back what the broker retains of our announcements (it
                // may have lost them in a restart without persistence), then
                // converge: see `DiscoveryLedger`.
                core.readBackStarted()
                publishStatus(state: "online")
                publishHealthConfigs()
            } else if centralWasConnected {
                log.log(shutdown != nil ? .info : .warning, "disconnected", [
                    "broker": "central", "reason": reason, "journal_messages": String(core.journal.unacknowledgedCount),
                ])
            } else {
                log.limited(.warning, key: "connect.central", "cannot_connect", ["broker": "central", "reason": reason])
            }
            centralWasConnected = connected
        }
        centralClient.onSubscriptionsSettled = { [unowned self] in core.subscriptionsSettled(at: .now()) }
        centralClient.onMessage = { [unowned self] message in
            if message.topic == core.readBackRound.topic {
                core.readBackEcho(message.payload, now: now())
            } else if message.topic == homeAssistantStatusTopic {
                guard shutdown == nil, message.payload.elementsEqual("online".utf8) else { return }
                log.info("home_assistant_online", ["detail": "announcing the meters again"])
                core.announceHomeAssistant(now: now())
                publishHealthConfigs()
            } else if message.topic == peerStatusRoot || message.topic.hasPrefix(peerStatusRoot + "/") {
                guard message.topic != statusTopic else { return }
                let instance = message.topic == peerStatusRoot ? "" : String(message.topic.dropFirst(peerStatusRoot.count + 1))
                guard !instance.contains("/") else { return }
                core.peerStatus(instance: instance, PeerStatus(document: Array(message.payload)), now: now())
            } else if let id = MeterSilence.id(inTopic: message.topic, root: core.programs.rootTopic) {
                core.meterSilence(id: id, MeterSilence(payload: Array(message.payload)), now: now())
            } else {
                core.observed(topic: message.topic, payload: Array(message.payload))
            }
        }
        centralClient.onPublished = { [unowned self] mid in core.acknowledged(mid) }
        centralClient.onPublishRejected = { [unowned self] mid, code, reason in core.rejected(mid, code: code, reason: reason, at: .now()) }
        centralClient.onSubscriptionRejected = { [unowned self] filter in
            log.error("subscription_refused", ["broker": "central", "filter": filter])
        }
    }

    /// The meters' topics, shared with the other proxies of the group
    /// (`proxy.shared_subscription_group`): the broker hands each message to one.
    private func shared(_ filter: String) -> String {
        sharedSubscriptionGroup.map { "$share/\($0)/\(filter)" } ?? filter
    }

    // MARK: Status

    private func scheduleStatus() {
        statusTimer?.cancel()
        statusTimer = loop.repeating(every: Double(statusIntervalSeconds)) { [unowned self] in
            if shutdown == nil { publishStatus(state: "online") }
        }
    }

    /// Publishes the status document (retained, QoS 1, outside the journal:
    /// a status is only worth its latest value); returns its message id.
    @discardableResult
    private func publishStatus(state: String) -> Int32? {
        guard centralClient.isConnected else { return nil }
        let wallClock = now()
        let monotonic = MonotonicInstant.now()
        let statistics = core.statistics
        var perMinute = 0
        if let previous = previousStatus, monotonic.seconds(since: previous.at) > 0.5 {
            perMinute = Int((Double(statistics.forwarded - previous.forwarded) * 60 / monotonic.seconds(since: previous.at)).rounded())
        }
        previousStatus = (statistics.forwarded, monotonic)
        let programs = core.programs
        let online = statistics.lastSeen.count { id, seen in
            let allowed = Int64(programs.silenceAllowed(for: id) ?? 3600)
            return (wallClock.epochMillis - seen.epochMillis) / 1000 <= allowed
        }
        var status = statistics.status(
            state: state, version: ServiceVersion.current, started: started, now: wallClock,
            journal: core.journalStatus(at: monotonic, wallClock: wallClock),
            metersOnline: online, forwardedPerMinute: max(0, perMinute), problems: core.problems,
            readBack: core.readBack)
        status.logLinesDropped = log.droppedLines
        do {
            let mid = try centralClient.publish(topic: statusTopic, payload: status.payload, qos: 1, retain: true)
            core.statusPublished(mid)
            if state == "online" {
                for change in core.silenceChanges(now: wallClock, started: started) {
                    core.statusPublished(try centralClient.publish(topic: change.topic, payload: change.payload, qos: 1, retain: true))
                }
            }
            return mid
        } catch {
            log.limited(.error, key: "publish.status", "status_publish_failed", ["error": "\(error)"])
            return nil
        }
    }

    /// The proxy's own device in Home Assistant (`HealthDevice.proxy`), retained;
    /// at every central connection and every Home Assistant `online`.
    private func publishHealthConfigs() {
        guard core.programs.siteConfig.homeAssistant.enabled, centralClient.isConnected else { return }
        for config in HealthDevice.proxy.configs(program: core.programs.first, statusTopic: statusTopic, origin: core.origin) {
            do {
                core.statusPublished(try centralClient.publish(topic: config.topic, payload: config.payload, qos: 1, retain: true))
            } catch {
                log.limited(.error, key: "publish.health", "health_config_publish_failed", ["topic": config.topic, "error": "\(error)"])
            }
        }
    }

    // MARK: Reload

    /// SIGHUP: the same load → check → compile path as start-up, off the loop;
    /// the running program stays unless the new one compiled cleanly. Broker
    /// settings, the status topic and the journal's fsync policy need a restart.
    private func reload() {
        let options = configuration.service
        log.info("reloading", ["rules": options.rules, "config": options.config ?? "(defaults)"])
        let loaded: Site
        do throws(DiagnosticReport) {
            loaded = try Site.load(rules: options.rulePaths, config: options.config)
        } catch {
            for d in error.diagnostics where d.severity == .error {
                log.error("reload_failed", ["diagnostic": d.headline, "hint": d.hint ?? "", "detail": "keeping the running rules"])
            }
            return
        }
        for d in loaded.warnings.diagnostics { log.warning("config_warning", ["diagnostic": d.headline, "hint": d.hint ?? ""]) }
        log.level = options.logLevel(for: loaded.settings)
        loop.execute { [self] in apply(loaded) }
    }

    private func apply(_ loaded: Site) {
        let programs = loaded.programs
        let proxy = loaded.settings.proxy
        if programs.discoverySubscriptions != core.ledger.discoveryFilters
            || programs.siteConfig.homeAssistant.discoveryPrefix != core.ledger.discoveryPrefix {
            log.warning("restart_needed", ["detail": "new discovery topics or a new discovery prefix take effect after a restart"])
        }
        if programs.statusTopic != statusTopic {
            log.warning("restart_needed", ["status_topic": programs.statusTopic, "detail": "the status topic changes after a restart"])
        }
        core.settings.maxPayloadBytes = proxy.maxPayloadBytes
        core.settings.discoveryOnInternal = proxy.discoveryOnInternal
        core.settings.maxMeters = proxy.maxMeters
        core.journal.maxBytes = proxy.journalMaxBytes
        if proxy.statusIntervalSeconds != statusIntervalSeconds {
            statusIntervalSeconds = proxy.statusIntervalSeconds
            scheduleStatus()
        }
        for filter in programs.subscriptions where !subscriptions.contains(filter) {
            subscriptions.insert(filter)
            do {
                try internalClient.subscribe(shared(filter), qos: 1)
            } catch {
                log.error("cannot_subscribe", ["filter": filter, "error": "\(error)"])
            }
        }
        core.reload(programs, now: now())
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

/// The journal's site settings (`proxy.journal_*`).
struct JournalSettings: Sendable {
    var maxBytes: Int
    var fsync: JournalFsync

    init(maxBytes: Int, fsync: JournalFsync) {
        self.maxBytes = maxBytes
        self.fsync = fsync
    }

    init(_ proxy: ProxySettings) {
        maxBytes = proxy.journalMaxBytes
        fsync = proxy.journalFsync
    }

    /// Segments of 1/16 of the bound, between 64 KiB and 16 MiB: whole
    /// segments are deleted, so back-pressure ends within a segment of 90 %.
    var segmentBytes: Int { min(16 << 20, max(64 << 10, maxBytes / 16)) }

    var fsyncName: String {
        switch fsync {
        case .never: "never"
        case .always: "always"
        case .interval(let ms): "interval(\(ms) ms)"
        }
    }
}
