#if canImport(Glibc)
import Glibc
#endif
import Clock
import MQTT
import RuleEngine
import SiteSettings

/// The `config-sender` process: discovery from the central broker, commands
/// and replies on the internal broker, decisions by `ConfigPlanner`, state in
/// `ConfigStateStore`, status retained on the central broker.
///
/// With `config_sender.discovery_from: internal` the discovery subscription
/// goes to the internal broker instead, where the proxy publishes the same
/// retained messages (`proxy.discovery_on_internal`): meters are configured
/// while the central broker is away; only the status waits for it.
///
/// One `EventLoop` on the thread that calls `run()` drives both connections,
/// the timers and the `ConfigSenderCore`, which does the work; nothing here
/// polls. The core's timeouts, retries and periodic pass run from one loop
/// timer set to `core.nextWake()` after every iteration (monotonic clock);
/// the config files are stat'ed by a repeating loop timer. Every object here
/// lives on the loop thread: signals arrive on a dispatch queue
/// (`SignalWatcher`) and reach the loop through `control`, a `Mutex`.
public final class ConfigSenderService {
    public struct Configuration: Sendable {
        public var service: ServiceOptions
        public var stateDirectory: String
        /// Shifts the service's notion of today by whole days (testing only).
        public var dayOffset: Int
        /// How often config.yaml and the pack are stat'ed for changes.
        public var configPollSeconds: Double
        /// How long SIGTERM waits for replies still expected; nil: the reply timeout, at most 30 s.
        public var shutdownTimeoutSeconds: Double?
        /// Status updates are published at most this often.
        public var statusMinIntervalSeconds: Double

        public init(service: ServiceOptions, stateDirectory: String, dayOffset: Int = 0, configPollSeconds: Double = 2,
                    shutdownTimeoutSeconds: Double? = nil, statusMinIntervalSeconds: Double = 1) {
            self.service = service
            self.stateDirectory = stateDirectory
            self.dayOffset = dayOffset
            self.configPollSeconds = configPollSeconds
            self.shutdownTimeoutSeconds = shutdownTimeoutSeconds
            self.statusMinIntervalSeconds = statusMinIntervalSeconds
        }
    }

    let configuration: Configuration
    let log: Log
    let loop: EventLoop
    let internalClient: MQTTClient
    let centralClient: MQTTClient
    let core: ConfigSenderCore
    /// Stop and reload requests, from any thread.
    public let control: ConfigSenderControl

    // Loop thread only, below.
    private var sources: ConfigSources
    private var wakeTimer: LoopTimer?
    private var wakeAt: MonotonicInstant?
    private var internalWasConnected = false
    private var centralWasConnected = false
    /// The broker that carries discovery; fixed until a restart.
    private let discoveryFrom: ConfigSenderSettings.DiscoverySource
    /// `READY=1`, the watchdog and `STATUS=` under systemd (`ConfigSenderService+systemd`).
    private var systemd: SystemdSupervision?

    /// Takes the program and settings loaded from `configuration.service` (their
    /// diagnostics are the caller's to print), loads the state, creates both
    /// clients. Nothing is connected yet.
    public init(site built: Site, configuration: Configuration, log: Log) throws(ServiceError) {
        let program = built.programs
        self.configuration = configuration
        self.log = log
        let subscriptions = program.discoverySubscriptions
        guard !subscriptions.isEmpty else {
            throw ServiceError("the rule pack '\(program.packName)' has no discovery topic, so no meter can be discovered")
        }
        guard !program.commandNames.isEmpty else {
            throw ServiceError("the rule pack '\(program.packName)' has no commands to send")
        }
        let site = program.siteConfig
        let statusTopic = built.configSenderStatusTopic
        let startedAt = Instant.now()
        let store = ConfigStateStore(directory: configuration.stateDirectory)
        let loaded: (records: [String: MeterRecord], events: [ConfigEvent])
        do {
            loaded = try store.load(now: startedAt)
        } catch {
            throw ServiceError(error.message)
        }
        let planner = ConfigPlanner(programs: program, options: ConfigPlanner.Options(site: built, dayOffset: configuration.dayOffset),
                                    records: loaded.records)
        let will = MQTTWill(topic: statusTopic, payload: ConfigSenderStatus.offline().payload, qos: 1, retain: true)
        let centralSettings = try BrokerSettings(settings: built.settings, broker: "central", client: "config_sender",
                                                 override: configuration.service.centralURL,
                                                 defaultClientID: "kpm33b-config-sender", instance: program.instance,
                                                 cleanSession: true, will: will)
        // A persistent session on the meters' broker: replies that arrive while we
        // reconnect are queued for us instead of lost.
        let internalSettings = try BrokerSettings(settings: built.settings, broker: "internal", client: "config_sender",
                                                  override: configuration.service.internalURL,
                                                  defaultClientID: "kpm33b-config-sender", instance: program.instance,
                                                  cleanSession: false)
        do {
            loop = try EventLoop()
            centralClient = try MQTTClient(loop: loop, endpoint: centralSettings.endpoint, options: centralSettings.options)
            internalClient = try MQTTClient(loop: loop, endpoint: internalSettings.endpoint, options: internalSettings.options)
        } catch {
            throw ServiceError(error.description)
        }
        control = ConfigSenderControl(loop: loop)
        discoveryFrom = built.settings.configSender.discoveryFrom
        sources = ConfigSources(configuration.service)
        core = ConfigSenderCore(
            planner: planner, store: store,
            settings: .init(statusTopic: statusTopic, discoverySubscriptions: subscriptions,
                            statusMinIntervalSeconds: configuration.statusMinIntervalSeconds,
                            partition: built.settings.configSender.partition,
                            // Each shard's internal broker carries only its own meters.
                            instance: built.settings.configSender.discoveryFrom == .central ? program.instance : nil),
            startedAt: startedAt, log: log)
        core.transport = self
        for event in loaded.events { log.emit(event) }
    }

    // MARK: Running

    /// Connects, then runs the loop on the calling thread until SIGTERM or
    /// SIGINT (or `control.requestStop`); then drains, saves and disconnects.
    /// SIGHUP rebuilds the program. Returns the exit status.
    public func run(handleSignals: Bool = true) -> Int32 {
        let control = self.control, log = self.log
        let watcher = handleSignals ? SignalWatcher { signal in
            if signal == SIGHUP {
                control.requestReload()
            } else if !control.requestStop(reason: SignalWatcher.name(signal)) {
                log.warning("second_stop_signal", ["signal": SignalWatcher.name(signal), "detail": "exiting without draining"])
                exit(1)
            }
        } : nil
        defer { withExtendedLifetime(watcher) {} }

        let program = core.planner.program
        log.info("starting", [
            "version": ServiceVersion.current,
            "pack": program.packName, "internal": internalClient.endpoint.description,
            "central": centralClient.endpoint.description, "state_file": core.store.path,
            "status_topic": core.settings.statusTopic, "discovery": core.settings.discoverySubscriptions.joined(separator: " "),
            "discovery_from": discoveryFrom.rawValue,
            "day_offset": String(configuration.dayOffset),
        ])
        systemd = makeSupervision()
        wireInternal()
        wireCentral()
        do {
            for topic in program.replyTopics { try internalClient.subscribe(topic, qos: 1) }
            for filter in core.settings.discoverySubscriptions { try discoveryClient.subscribe(filter, qos: 1) }
            // Commands on demand (a relay from Home Assistant) come from the central broker.
            // Retain as published: a retained request is told apart even live (never carried out).
            for filter in program.requestSubscriptions { try centralClient.subscribe(filter, qos: 1, retainAsPublished: true) }
        } catch {
            log.error("start_failed", ["error": error.description])
            return 1
        }
        internalClient.start()
        centralClient.start()
        loop.addIterationHook { [unowned self] in endOfIteration() }
        loop.repeating(every: configuration.configPollSeconds) { [unowned self] in
            if !core.isStopping && sources.changed() { reload(trigger: "file change") }
        }
        systemd?.ready()
        loop.run()

        log.info("stopped", ["reason": core.stopReason ?? "stop"])
        return 0
    }

    /// The iteration hook: requests from other threads, the core's batched
    /// writes, and the timer for the core's next deadline.
    private func endOfIteration() {
        let requests = control.take()
        let now = ConfigTime.now()
        if let reason = requests.stop {
            let timeout = configuration.shutdownTimeoutSeconds ?? min(core.planner.options.replyTimeoutSeconds, 30)
            systemd?.stopping("waiting up to \(Int(timeout)) s for replies in flight")
            core.beginShutdown(reason: reason, timeout: timeout, at: now)
        }
        if requests.reload && !core.isStopping {
            sources.refresh()
            reload(trigger: "SIGHUP")
        }
        core.endOfIteration(at: now)
        if core.isFinished {
            // Each stop() writes its DISCONNECT now, so the broker drops the will.
            internalClient.stop()
            centralClient.stop()
            loop.stop()
            return
        }
        armWake(now: now.monotonic)
    }

    /// One timer, at the core's next deadline; moved only when that changes.
    private func armWake(now: MonotonicInstant) {
        let next = core.nextWake()
        guard next != wakeAt else { return }
        wakeTimer?.cancel()
        wakeTimer = nil
        wakeAt = next
        guard let next else { return }
        // The loop's timers never fire early, so `tick` sees a time at or after `next`.
        wakeTimer = loop.schedule(after: next.seconds(since: now)) { [unowned self] in
            wakeTimer = nil
            wakeAt = nil
            core.tick(at: .now())
        }
    }

    // MARK: Connections

    /// The client that subscribes to discovery (`config_sender.discovery_from`).
    private var discoveryClient: MQTTClient { discoveryFrom == .internal ? internalClient : centralClient }

    private func wireInternal() {
        internalClient.onConnectionChange = { [unowned self] connected, reason in
            let broker = internalClient.endpoint.description
            if connected {
                log.info("internal_connected", ["broker": broker])
            } else if core.isStopping {
                log.info("internal_disconnected", ["broker": broker, "reason": reason])
            } else if internalWasConnected {
                log.warning("internal_disconnected", ["broker": broker, "reason": reason])
            } else {
                log.limited(.warning, key: "internal_disconnected", "internal_disconnected", ["broker": broker, "reason": reason])
            }
            internalWasConnected = connected
            systemd?.brokerChanged("internal", connected: connected, reason: reason)
            core.internalConnectionChanged(connected, at: .now())
        }
        internalClient.onMessage = { [unowned self] message in
            // A persistent session keeps its subscriptions: after a switch back to
            // `central`, discovery may still arrive here, and is not a reply.
            if core.isDiscovery(message.topic) {
                guard discoveryFrom == .internal else { return }
                core.discoveryReceived(topic: message.topic, payload: Array(message.payload), at: .now())
            } else {
                core.replyReceived(topic: message.topic, payload: Array(message.payload), at: .now())
            }
        }
        internalClient.onPublished = { [unowned self] mid in core.commandAcknowledged(mid) }
        internalClient.onPublishRejected = { [unowned self] mid, _, reason in core.commandRefused(mid, reason: reason, at: .now()) }
        internalClient.onSubscriptionRejected = { [unowned self] filter in
            log.error("subscription_refused", ["broker": "internal", "filter": filter])
        }
    }

    private func wireCentral() {
        centralClient.onConnectionChange = { [unowned self] connected, reason in
            let broker = centralClient.endpoint.description
            if connected {
                log.info("central_connected", ["broker": broker])
            } else if core.isStopping {
                log.info("central_disconnected", ["broker": broker, "reason": reason])
            } else if centralWasConnected {
                log.warning("central_disconnected", ["broker": broker, "reason": reason])
            } else {
                log.limited(.warning, key: "central_disconnected", "central_disconnected", ["broker": broker, "reason": reason])
            }
            centralWasConnected = connected
            systemd?.brokerChanged("central", connected: connected, reason: reason)
            core.centralConnectionChanged(connected)
        }
        centralClient.onMessage = { [unowned self] message in
            if core.planner.program.requestSubscriptions.contains(where: { MQTTTopic.matches(filter: $0, topic: message.topic) }) {
                core.requestReceived(topic: message.topic, payload: Array(message.payload), retained: message.retain, at: .now())
                return
            }
            guard discoveryFrom == .central else { return }
            core.discoveryReceived(topic: message.topic, payload: Array(message.payload), at: .now())
        }
        centralClient.onPublished = { [unowned self] mid in core.statusAcknowledged(mid) }
        centralClient.onSubscriptionRejected = { [unowned self] filter in
            log.error("subscription_refused", ["broker": "central", "filter": filter])
        }
    }

    // MARK: Config changes

    /// Rebuilds the program from config.yaml and the pack, on the loop thread
    /// (rare, and a few milliseconds). A failed build keeps the running program
    /// and logs every diagnostic.
    private func reload(trigger: String) {
        let options = configuration.service
        log.info("reloading", ["trigger": trigger, "rules": options.rules, "config": options.config ?? "(defaults)"])
        let site: Site
        do throws(DiagnosticReport) {
            site = try Site.load(rules: options.rulePaths, config: options.config)
        } catch {
            for d in error.diagnostics where d.severity == .error {
                log.error("config_reload_failed", ["diagnostic": d.headline, "hint": d.hint ?? ""])
            }
            log.error("config_reload_failed", ["action": "keeping the running configuration", "trigger": trigger])
            return
        }
        for d in site.warnings.diagnostics { log.warning("config_warning", ["diagnostic": d.headline, "hint": d.hint ?? ""]) }
        log.level = options.logLevel(for: site.settings)
        if site.settings.configSender.discoveryFrom != discoveryFrom {
            log.warning("restart_needed", ["discovery_from": site.settings.configSender.discoveryFrom.rawValue,
                                           "detail": "the broker discovery comes from changes after a restart"])
        }
        core.apply(programs: site.programs, options: ConfigPlanner.Options(site: site, dayOffset: configuration.dayOffset),
                   at: .now())
    }
}

extension ConfigSenderService: ConfigSenderTransport {
    var isCentralConnected: Bool { centralClient.isConnected }

    func publishCommand(topic: String, payload: [UInt8]) throws(MQTTError) -> Int32 {
        try internalClient.publish(topic: topic, payload: payload, qos: 1, retain: false)
    }

    func subscribeReplies(_ filter: String) throws(MQTTError) {
        try internalClient.subscribe(filter, qos: 1)
    }

    func publishStatus(topic: String, payload: [UInt8]) throws(MQTTError) -> Int32 {
        try centralClient.publish(topic: topic, payload: payload, qos: 1, retain: true)
    }
}
