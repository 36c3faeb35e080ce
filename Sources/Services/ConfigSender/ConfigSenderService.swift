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
/// Runs on a `ServiceHost` (the loop, both clients, signals, reload, the
/// shutdown phases); this type keeps what is the config sender's: its
/// subscriptions and the `ConfigSenderCore`, which does the work. The core's
/// timeouts, retries and periodic pass run from one loop timer set to
/// `core.nextWake()` after every iteration (monotonic clock). Loop thread
/// only, except `control`.
public final class ConfigSenderService {
    public struct Configuration: Sendable {
        public var service: ServiceOptions
        public var stateDirectory: String
        /// How long SIGTERM waits for replies still expected; nil: the reply timeout, at most 30 s.
        public var shutdownTimeoutSeconds: Double?
        /// Status updates are published at most this often.
        public var statusMinIntervalSeconds: Double

        public init(service: ServiceOptions, stateDirectory: String,
                    shutdownTimeoutSeconds: Double? = nil, statusMinIntervalSeconds: Double = 1) {
            self.service = service
            self.stateDirectory = stateDirectory
            self.shutdownTimeoutSeconds = shutdownTimeoutSeconds
            self.statusMinIntervalSeconds = statusMinIntervalSeconds
        }
    }

    let configuration: Configuration
    let log: Log
    let host: ServiceHost
    let core: ConfigSenderCore
    /// Stop and reload requests, from any thread.
    public var control: ServiceControl { host.control }

    // Loop thread only, below.
    private var wakeTimer: LoopTimer?
    private var wakeAt: MonotonicInstant?
    /// The broker that carries discovery; fixed until a restart.
    private let discoveryFrom: ConfigSenderSettings.DiscoverySource

    private var internalClient: MQTTClient { host.internalClient }
    private var centralClient: MQTTClient { host.centralClient }

    /// Takes the programs and settings loaded from `configuration.service` (their
    /// diagnostics are the caller's to print), loads the state, creates both
    /// clients. Nothing is connected yet.
    public init(site built: Site, configuration: Configuration, log: Log) throws(ServiceError) {
        let programs = built.programs
        self.configuration = configuration
        self.log = log
        let subscriptions = programs.discoverySubscriptions
        guard !subscriptions.isEmpty else {
            throw ServiceError("the rule pack '\(programs.packName)' has no discovery topic, so no meter can be discovered")
        }
        guard !programs.commandNames.isEmpty else {
            throw ServiceError("the rule pack '\(programs.packName)' has no commands to send")
        }
        let statusTopic = built.configSenderStatusTopic
        let startedAt = Instant.now()
        let store = ConfigStateStore(directory: configuration.stateDirectory)
        let loaded: (records: [String: MeterRecord], events: [ConfigEvent])
        do {
            loaded = try store.load(now: startedAt)
        } catch {
            throw ServiceError(error.message)
        }
        let planner = ConfigPlanner(programs: programs, options: ConfigPlanner.Options(site: built),
                                    records: loaded.records)
        let will = MQTTWill(topic: statusTopic, payload: ConfigSenderStatus.offline().payload, qos: 1, retain: true)
        // A persistent session on the meters' broker: replies that arrive while we
        // reconnect are queued for us instead of lost.
        host = try ServiceHost(name: "config-sender", service: .configSender, clientID: "kpm33b-config-sender", site: built,
                               options: configuration.service, log: log,
                               internal: .init(cleanSession: false), central: .init(cleanSession: true, will: will))
        discoveryFrom = built.settings.configSender.discoveryFrom
        core = ConfigSenderCore(
            planner: planner, store: store,
            settings: .init(statusTopic: statusTopic, discoverySubscriptions: subscriptions,
                            statusMinIntervalSeconds: configuration.statusMinIntervalSeconds,
                            partition: built.settings.configSender.partition,
                            // Each shard's internal broker carries only its own meters.
                            instance: built.settings.configSender.discoveryFrom == .central ? programs.instance : nil),
            startedAt: startedAt, log: log)
        core.transport = self
        for event in loaded.events { log.emit(event) }
    }

    /// Connects, then runs the loop on the calling thread until SIGTERM or
    /// SIGINT (or `control.requestStop`) went through drain → offline →
    /// finished. SIGHUP reloads. Returns the exit status.
    public func run(handleSignals: Bool = true) -> Int32 {
        host.run(self, handleSignals: handleSignals)
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
        wakeTimer = host.loop.schedule(after: next.seconds(since: now)) { [unowned self] in
            wakeTimer = nil
            wakeAt = nil
            core.tick(at: .now())
        }
    }

    /// The client that subscribes to discovery (`config_sender.discovery_from`).
    private var discoveryClient: MQTTClient { discoveryFrom == .internal ? internalClient : centralClient }

    private func wireInternal() {
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
    }

    private func wireCentral() {
        centralClient.onMessage = { [unowned self] message in
            if core.planner.programs.requestSubscriptions.contains(where: { MQTTTopic.matches(filter: $0, topic: message.topic) }) {
                core.requestReceived(topic: message.topic, payload: Array(message.payload), retained: message.retain, at: .now())
                return
            }
            guard discoveryFrom == .central else { return }
            core.discoveryReceived(topic: message.topic, payload: Array(message.payload), at: .now())
        }
    }
}

extension ConfigSenderService: HostedService {
    func start() throws(ServiceError) {
        wireInternal()
        wireCentral()
        let programs = core.planner.programs
        do {
            for topic in programs.replyTopics { try internalClient.subscribe(topic, qos: 1) }
            for filter in core.settings.discoverySubscriptions { try discoveryClient.subscribe(filter, qos: 1) }
            // Commands on demand (a relay from Home Assistant) come from the central broker.
            // Retain as published: a retained request is told apart even live (never carried out).
            for filter in programs.requestSubscriptions { try centralClient.subscribe(filter, qos: 1, retainAsPublished: true) }
        } catch {
            throw ServiceError(error.description)
        }
    }

    var startedFields: [(String, String)] {
        [("state_file", core.store.path), ("status_topic", core.settings.statusTopic),
         ("discovery", core.settings.discoverySubscriptions.joined(separator: " ")), ("discovery_from", discoveryFrom.rawValue)]
    }

    func connectionChanged(_ broker: ServiceHost.Broker, connected: Bool, reason: String) {
        switch broker {
        case .internal: core.internalConnectionChanged(connected, at: .now())
        case .central: core.centralConnectionChanged(connected)
        }
    }

    /// The core's batched writes, and the timer for its next deadline.
    func endOfIteration() {
        let now = ConfigTime.now()
        core.endOfIteration(at: now)
        armWake(now: now.monotonic)
    }

    var discoveryTopics: [String] { core.settings.discoverySubscriptions }

    func apply(_ site: Site) {
        core.apply(programs: site.programs, options: ConfigPlanner.Options(site: site), at: .now())
    }

    /// The reply timeout, at most 30 s, unless the configuration says otherwise.
    var drainSeconds: Double { configuration.shutdownTimeoutSeconds ?? min(core.planner.options.replyTimeoutSeconds, 30) }

    func beginDrain() -> [(String, String)] { core.beginDrain() }

    var isDrained: Bool { core.isDrained }

    func publishOffline(drainComplete: Bool) -> Int32? { core.publishOffline(at: .now()) }

    func stopped() -> [(String, String)] { [] }

    /// The meters known, those whose commands all succeeded, and the commands pending.
    var supervisionSummary: String {
        let planner = core.planner
        let configured = planner.meters.keys.count { planner.lastResult($0) == CommandResult.Outcome.success.rawValue }
        return "\(planner.meters.count) meters, \(configured) configured, \(planner.pendingCount) commands pending"
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
