#if canImport(Glibc)
import Glibc
#endif
import JSON
import Journal
import Clock
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
    /// The forwarding rate of systemd's status line.
    let forwardedPerMinute = PerMinute()

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
        core = ProxyCore(programs: programs, journal: journal,
                         settings: .init(maxPayloadBytes: settings.proxy.maxPayloadBytes,
                                         discoveryOnInternal: settings.proxy.discoveryOnInternal,
                                         maxMeters: settings.proxy.maxMeters),
                         origin: Origin(name: "kpm33b-proxy", version: ServiceVersion.current), log: log,
                         clientID: centralClient.options.clientID)
        core.transport = self
        core.delivery.deadLetters = DeadLetters(directory: configuration.stateDirectory)
        core.announcements.announcedFile = (configuration.stateDirectory.hasSuffix("/") ? configuration.stateDirectory : configuration.stateDirectory + "/") + "announced"
        core.delivery.refreshDeadLetters()
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

    /// Runs until SIGTERM or SIGINT went through drain → offline → finished
    /// (SIGHUP reloads). Returns the exit status.
    public func run() -> Int32 {
        host.run(self)
    }

    /// Once a second: the UTC offset, then the core's chores.
    func everySecond() {
        refreshUTCOffset()
        core.tick(now: now())
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
        // Unretained on the two per-reading handlers (this one and the
        // central PUBACK's), the service and its core: the clients that call
        // them belong to the host, which belongs to this service, and call
        // them only while `run` runs it; a checked reference would cost an
        // atomic retain and release per call, and so does an unowned(unsafe)
        // one used as a call's receiver (a strong copy for the call): the
        // core is borrowed (`_withUnsafeGuaranteedRef`) instead.
        let unretainedCore = Unmanaged.passUnretained(core)
        internalClient.onMessage = { [unowned(unsafe) self] message in
            let now = now()
            unretainedCore._withUnsafeGuaranteedRef { core in
                // Only the broker's own topics start with '$' (clients cannot publish them).
                if message.topic.utf8.first == UInt8(ascii: "$") {
                    core.internalBrokerFigure(topic: message.topic, payload: message.payload)
                    return
                }
                if message.qos == 0 { core.receivedAtQoS0(topic: message.topic) }
                core.received(topic: message.topic, payload: message.payload, now: now)
            }
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

    /// After a central connection (the core reads back what the broker
    /// retains of our announcements, which it may have lost in a restart
    /// without persistence, then converges: see `DiscoveryLedger`): the
    /// status and the health configs again.
    func centralConnected() {
        publishStatus(state: "online")
        publishHealthConfigs()
    }

    func wireCentral() {
        centralClient.onSubscriptionsSettled = { [unowned self] in core.subscriptionsSettled(at: .now()) }
        centralClient.onMessage = { [unowned self] message in
            if message.topic == core.announcements.readBackRound.topic {
                core.readBackEcho(message.payload, now: now())
            } else if message.topic == homeAssistantStatusTopic {
                guard host.phases.isRunning, message.payload.elementsEqual("online".utf8) else { return }
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
        let unretainedCore = Unmanaged.passUnretained(core)
        centralClient.onPublished = { mid in unretainedCore._withUnsafeGuaranteedRef { $0.acknowledged(mid) } }  // see wireInternal
        centralClient.onPublishRejected = { [unowned self] mid, code, reason in core.delivery.rejected(mid, code: code, reason: reason, at: .now()) }
    }

    /// The meters' topics, shared with the other proxies of the group
    /// (`proxy.shared_subscription_group`): the broker hands each message to one.
    func shared(_ filter: String) -> String {
        sharedSubscriptionGroup.map { "$share/\($0)/\(filter)" } ?? filter
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
        let programs = core.programs
        var online = 0
        core.engine.forEachHeard { id, seen in
            let allowed = Int64(programs.silenceAllowed(for: id) ?? 3600)
            if (wallClock.epochMillis - seen.epochMillis) / 1000 <= allowed { online += 1 }
        }
        var status = statistics.status(
            state: state, version: ServiceVersion.current, started: started, now: wallClock,
            journal: core.delivery.journalStatus(at: monotonic, wallClock: wallClock),
            metersSeen: core.engine.metersHeard, metersOnline: online, forwardedPerMinute: max(0, perMinute), problems: core.problems,
            readBack: core.announcements.readBack)
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

    /// A reloaded site (compiled off the loop by the host): what applies live.
    func applyLive(_ loaded: Site) {
        let programs = loaded.programs
        let proxy = loaded.settings.proxy
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

    var sendWindow: Int { centralClient.sendWindow }

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
