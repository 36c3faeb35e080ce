import Foundation
import JSON
import MQTT
import RuleEngine
import SiteSettings

/// The `config-sender` process: discovery from the central broker, commands
/// and replies on the internal broker, decisions by `ConfigPlanner`, state in
/// `ConfigStateStore`, status retained on the central broker.
///
/// Threads: libmosquitto's network thread per connection delivers discovery
/// and replies; the thread that calls `run()` is the scheduler (timeouts,
/// retries, the periodic pass, config polling, state saves, status). The
/// planner sits behind `lock`; actions it returns run after the lock is
/// released, so a publish never happens while the lock is held.
public final class ConfigSenderService: @unchecked Sendable {
    public struct Configuration: Sendable {
        public var service: ServiceOptions
        public var stateDirectory: String
        /// Shifts the service's notion of today by whole days (testing only).
        public var dayOffset: Int
        /// How often config.yaml and the pack are looked at for changes.
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
    let store: ConfigStateStore
    let startedAt: Instant
    let statusTopic: String
    let discoverySubscription: String
    let central: MQTTConnection
    let `internal`: MQTTConnection

    /// Guards `state`.
    private let lock = NSLock()
    private var state: State
    /// Guards `inFlight`, and is held across a publish and the recording of its
    /// message id, so a PUBACK handler always finds the id it is told about.
    private let sendLock = NSLock()
    /// Message id → oprid of commands the broker has not acknowledged yet.
    private var inFlight: [Int32: String] = [:]

    /// Takes the program and settings loaded from `configuration.service` (their
    /// diagnostics are the caller's to print), loads the state, creates both
    /// connections. Nothing is connected yet.
    public init(site built: Site, configuration: Configuration, log: Log) throws(ServiceError) {
        let program = built.program
        self.configuration = configuration
        self.log = log
        guard let subscription = program.discoverySubscription else {
            throw ServiceError("the rule pack '\(program.packName)' has no discovery topic, so no meter can be discovered")
        }
        guard !program.commandNames.isEmpty else {
            throw ServiceError("the rule pack '\(program.packName)' has no commands to send")
        }
        discoverySubscription = subscription
        let site = program.siteConfig
        statusTopic = site.configSender.statusTopic ?? "\(program.rootTopic)/config-sender/status"
        startedAt = Instant.now()
        store = ConfigStateStore(directory: configuration.stateDirectory)
        let loaded: (records: [String: MeterRecord], events: [ConfigEvent])
        do {
            loaded = try store.load(now: startedAt)
        } catch {
            throw ServiceError(error.message)
        }
        let planner = ConfigPlanner(program: program, options: ConfigPlanner.Options(site: built, dayOffset: configuration.dayOffset),
                                    records: loaded.records)
        let will = MQTTWill(topic: statusTopic, payload: ConfigPlanner.offlineStatus().serialized(), qos: 1, retain: true)
        let centralSettings = try BrokerSettings(settings: built.settings, broker: "central", client: "config_sender",
                                                 override: configuration.service.centralURL,
                                                 defaultClientID: "kpm33b-config-sender", cleanSession: true, will: will)
        // A persistent session on the meters' broker: replies that arrive while we
        // reconnect are queued for us instead of lost.
        let internalSettings = try BrokerSettings(settings: built.settings, broker: "internal", client: "config_sender",
                                                  override: configuration.service.internalURL,
                                                  defaultClientID: "kpm33b-config-sender", cleanSession: false)
        do {
            central = try MQTTConnection(endpoint: centralSettings.endpoint, options: centralSettings.options)
            `internal` = try MQTTConnection(endpoint: internalSettings.endpoint, options: internalSettings.options)
        } catch {
            throw ServiceError(error.description)
        }
        state = State(planner: planner, sources: Self.readSources(configuration.service))
        for event in loaded.events { emit(event) }
    }

    // MARK: Running

    /// Connects, then runs the scheduler on the calling thread until SIGTERM or
    /// SIGINT (or `requestStop`); then drains, saves and disconnects. SIGHUP
    /// rebuilds the program. Returns the exit status.
    public func run(handleSignals: Bool = true) -> Int32 {
        let watcher = handleSignals ? SignalWatcher { [self] signal in
            if signal == SIGHUP { requestReload() } else { requestStop(reason: SignalWatcher.name(signal)) }
        } : nil
        defer { withExtendedLifetime(watcher) {} }
        let program = locked { $0.planner.program }
        log.info("starting", [
            "version": ServiceVersion.current,
            "pack": program.packName, "internal": `internal`.endpoint.description, "central": central.endpoint.description,
            "state_file": store.path, "status_topic": statusTopic, "discovery": discoverySubscription,
            "day_offset": String(configuration.dayOffset),
        ])
        wireHandlers()
        do {
            for topic in program.replyTopics { try `internal`.subscribe(topic, qos: 1) }
            try central.subscribe(discoverySubscription, qos: 1)
            try `internal`.start()
            try central.start()
        } catch {
            log.error("start_failed", ["error": error.description])
            `internal`.stop()
            central.stop()
            return 1
        }

        var lastPoll = Date()
        var savedVersion = locked { $0.planner.recordsVersion }
        var publishedStatus = -1
        var lastStatusAt = Date.distantPast
        while true {
            let now = Instant.now()
            let (actions, stop) = locked { s -> ([ConfigPlanner.Action], String?) in (s.planner.tick(now: now), s.stopRequested) }
            perform(actions)
            if stop != nil { break }

            let reload = locked { s -> Bool in
                defer { s.reloadRequested = false }
                return s.reloadRequested
            }
            if reload || Date().timeIntervalSince(lastPoll) >= configuration.configPollSeconds {
                lastPoll = Date()
                checkConfig(forced: reload)
            }
            savedVersion = saveIfChanged(savedVersion)
            let version = locked { $0.planner.statusVersion &+ ($0.centralConnected ? 1 << 40 : 0) }
            if version != publishedStatus, Date().timeIntervalSince(lastStatusAt) >= configuration.statusMinIntervalSeconds {
                if publishStatus(state: "online") {
                    publishedStatus = version
                    lastStatusAt = Date()
                }
            }
            Thread.sleep(forTimeInterval: 0.05)
        }
        return shutdown(savedVersion: savedVersion)
    }

    /// Asks `run()` to drain and return (from a signal handler's queue, or a test).
    public func requestStop(reason: String) {
        let again = locked { s -> Bool in
            defer { s.stopRequested = s.stopRequested ?? reason }
            return s.stopRequested != nil
        }
        if again {
            log.warning("second stop request: exiting without draining", ["reason": reason])
            exit(1)
        }
    }

    /// Asks for a rebuild of the program at the next scheduler step (SIGHUP).
    public func requestReload() {
        locked { $0.reloadRequested = true }
    }

    private func shutdown(savedVersion: Int) -> Int32 {
        let reason = locked { $0.stopRequested } ?? "stop"
        let timeout = configuration.shutdownTimeoutSeconds ?? min(locked { $0.planner.options.replyTimeoutSeconds }, 30)
        let waiting = locked { s -> Int in
            s.planner.drain()
            return s.planner.awaitingReplyCount
        }
        log.info("stopping", ["reason": reason, "awaiting_replies": String(waiting), "wait_s": String(timeout)])
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            // Timeouts still count while draining; retries are not sent.
            let now = Instant.now()
            let (actions, left) = locked { s -> ([ConfigPlanner.Action], Int) in
                let actions = s.planner.tick(now: now)
                return (actions, s.planner.awaitingReplyCount)
            }
            perform(actions)
            if left == 0 { break }
            Thread.sleep(forTimeInterval: 0.05)
        }
        let left = locked { $0.planner.awaitingReplyCount }
        if left > 0 { log.warning("stopping_without_replies", ["awaiting_replies": String(left)]) }
        _ = saveIfChanged(savedVersion, force: true)
        if central.isConnected {
            _ = try? central.publish(topic: statusTopic, payload: ConfigPlanner.offlineStatus(now: Instant.now()).serialized(),
                                     qos: 1, retain: true)
            let until = Date().addingTimeInterval(2)
            while central.unacknowledgedCount > 0 && Date() < until { Thread.sleep(forTimeInterval: 0.02) }
        }
        `internal`.stop()
        central.stop()
        log.info("stopped", ["reason": reason])
        return 0
    }

    // MARK: Handlers (network threads)

    private func wireHandlers() {
        central.onConnectionChange = { [weak self] connected, reason in
            guard let self else { return }
            self.locked { $0.centralConnected = connected }
            if connected {
                self.log.info("central_connected", ["broker": self.central.endpoint.description])
            } else if self.locked({ $0.stopRequested != nil }) {
                self.log.info("central_disconnected", ["broker": self.central.endpoint.description, "reason": reason])
            } else {
                self.log.limited(.warning, key: "central_disconnected", "central_disconnected",
                                 ["broker": self.central.endpoint.description, "reason": reason])
            }
        }
        central.onMessage = { [weak self] message in self?.handleDiscovery(message) }
        `internal`.onConnectionChange = { [weak self] connected, reason in
            guard let self else { return }
            if connected {
                self.log.info("internal_connected", ["broker": self.internal.endpoint.description])
            } else if self.locked({ $0.stopRequested != nil }) {
                self.log.info("internal_disconnected", ["broker": self.internal.endpoint.description, "reason": reason])
            } else {
                self.log.limited(.warning, key: "internal_disconnected", "internal_disconnected",
                                 ["broker": self.internal.endpoint.description, "reason": reason])
            }
            let now = Instant.now()
            self.perform(self.locked { $0.planner.setInternalConnected(connected, now: now) })
        }
        `internal`.onMessage = { [weak self] message in self?.handleReply(message) }
        `internal`.onPublishRejected = { [weak self] mid, reason in
            guard let self else { return }
            guard let oprid = self.sendLock.withLock({ self.inFlight.removeValue(forKey: mid) }) else { return }
            let now = Instant.now()
            self.perform(self.locked { $0.planner.publishRefused(operationID: oprid, reason: reason, now: now) })
        }
        `internal`.onPublished = { [weak self] mid in
            guard let self else { return }
            self.sendLock.withLock { _ = self.inFlight.removeValue(forKey: mid) }
        }
    }

    private func handleDiscovery(_ message: MQTTMessage) {
        guard MQTTTopic.matches(filter: discoverySubscription, topic: message.topic) else { return }
        let now = Instant.now()
        switch DiscoveryMessage.parse(topic: message.topic, payload: message.payload) {
        case .meter(let id, let offset):
            perform(locked { $0.planner.discovered(id, clockOffsetSeconds: offset, now: now) })
        case .removed(let id):
            perform(locked { $0.planner.forget(id, now: now) })
        case .invalid(let reason):
            log.limited(.warning, key: "discovery_invalid", "discovery_ignored", ["topic": message.topic, "reason": reason])
        }
    }

    private func handleReply(_ message: MQTTMessage) {
        let now = Instant.now()
        let program = locked { $0.planner.program }
        guard let reply = program.parseReply(topic: message.topic, payload: message.payload) else {
            log.limited(.warning, key: "reply_malformed", "reply_ignored",
                        ["topic": message.topic, "reason": "malformed or without oprid", "bytes": String(message.payload.count)])
            return
        }
        perform(locked { $0.planner.reply(reply, now: now) })
    }

    // MARK: Actions

    private func perform(_ actions: [ConfigPlanner.Action]) {
        for action in actions {
            switch action {
            case .send(let message):
                do {
                    try sendLock.withLock {
                        let mid = try `internal`.publish(topic: message.topic, payload: message.payload, qos: 1, retain: false)
                        inFlight[mid] = message.operationID
                    }
                } catch {
                    log.error("publish_failed", ["meter": message.deviceID, "command": message.command, "topic": message.topic,
                                                 "error": "\(error)"])
                }
            case .log(let event):
                emit(event)
            }
        }
    }

    func emit(_ event: ConfigEvent) {
        let level: LogLevel = switch event.level {
        case .debug: .debug
        case .info: .info
        case .warning: .warning
        case .error, .alert: .error
        }
        var fields = event.fields.map { ($0.key, $0.value) }
        var message = event.name
        if event.level == .alert {
            // `msg=ALERT` is what an operator's log watch greps for.
            message = "ALERT"
            fields.insert(("event", event.name), at: 0)
        }
        log.log(level, message, keyValuePairs(fields))
    }

    // MARK: State and status

    /// Saves when the planner's records moved since `version`; returns the version saved.
    private func saveIfChanged(_ version: Int, force: Bool = false) -> Int {
        let (records, current) = locked { ($0.planner.records, $0.planner.recordsVersion) }
        guard current != version || force else { return version }
        do {
            try store.save(records)
            return current
        } catch {
            log.limited(.error, key: "state_save", "state_save_failed", ["file": store.path, "error": error.message])
            return version
        }
    }

    @discardableResult
    private func publishStatus(state: String) -> Bool {
        let now = Instant.now()
        let document = locked { s in
            s.planner.statusDocument(state: state, connections: [
                ("internal", s.planner.internalConnected ? "connected" : "disconnected"),
                ("central", s.centralConnected ? "connected" : "disconnected"),
            ], startedAt: startedAt, now: now)
        }
        guard central.isConnected else { return false }
        do {
            try central.publish(topic: statusTopic, payload: document.serialized(), qos: 1, retain: true)
            return true
        } catch {
            log.limited(.warning, key: "status", "status_publish_failed", ["error": error.description])
            return false
        }
    }

    // MARK: Config changes

    /// Rebuilds the program when config.yaml or the pack changed (or when forced by
    /// SIGHUP). A failed build keeps the running program and logs every diagnostic.
    private func checkConfig(forced: Bool) {
        let current = Self.readSources(configuration.service)
        let previous = locked { $0.sources }
        guard forced || current != previous else { return }
        locked { $0.sources = current }
        log.info("reloading", ["trigger": forced ? "SIGHUP" : "file change", "rules": configuration.service.rules,
                               "config": configuration.service.config ?? "(defaults)"])
        let site: Site
        do throws(DiagnosticReport) {
            site = try Site.load(rules: configuration.service.rules, config: configuration.service.config)
        } catch {
            for d in error.diagnostics where d.severity == .error {
                log.error("config_reload_failed", ["diagnostic": d.headline, "hint": d.hint ?? ""])
            }
            log.error("config_reload_failed", ["action": "keeping the running configuration", "trigger": forced ? "SIGHUP" : "file change"])
            return
        }
        let program = site.program
        let now = Instant.now()
        let options = ConfigPlanner.Options(site: site, dayOffset: configuration.dayOffset)
        let oldProgram = locked { $0.planner.program }
        if Set(program.replyTopics) != Set(oldProgram.replyTopics) {
            for topic in program.replyTopics { try? `internal`.subscribe(topic, qos: 1) }
        }
        perform(locked { $0.planner.replace(program: program, options: options, now: now) })
    }

    /// The bytes of the site config and the pack file, by path.
    static func readSources(_ options: ServiceOptions) -> [String: [UInt8]] {
        let rules = options.rules
        let pack = rules.hasSuffix(".yaml") || rules.hasSuffix(".yml") ? rules : (rules as NSString).appendingPathComponent("pack.yaml")
        var out: [String: [UInt8]] = [:]
        for path in [pack] + (options.config.map { [$0] } ?? []) {
            out[path] = FileManager.default.contents(atPath: path).map { [UInt8]($0) } ?? []
        }
        return out
    }

    // MARK: Lock

    private struct State {
        var planner: ConfigPlanner
        var centralConnected = false
        var reloadRequested = false
        var stopRequested: String?
        /// The config and pack bytes the running program was built from.
        var sources: [String: [UInt8]]
    }

    private func locked<T>(_ body: (inout State) -> T) -> T {
        lock.lock()
        defer { lock.unlock() }
        return body(&state)
    }
}

/// `Log` takes `KeyValuePairs`, which only a literal can make; events carry a
/// runtime list. Up to 12 fields map one to one; more are folded into the last.
func keyValuePairs(_ f: [(String, String)]) -> KeyValuePairs<String, String> {
    var f = f
    if f.count > 12 {
        let rest = f[11...].map { "\($0.0)=\($0.1)" }.joined(separator: " ")
        f = Array(f[..<11]) + [("more", rest)]
    }
    switch f.count {
    case 0: return [:]
    case 1: return [f[0].0: f[0].1]
    case 2: return [f[0].0: f[0].1, f[1].0: f[1].1]
    case 3: return [f[0].0: f[0].1, f[1].0: f[1].1, f[2].0: f[2].1]
    case 4: return [f[0].0: f[0].1, f[1].0: f[1].1, f[2].0: f[2].1, f[3].0: f[3].1]
    case 5: return [f[0].0: f[0].1, f[1].0: f[1].1, f[2].0: f[2].1, f[3].0: f[3].1, f[4].0: f[4].1]
    case 6: return [f[0].0: f[0].1, f[1].0: f[1].1, f[2].0: f[2].1, f[3].0: f[3].1, f[4].0: f[4].1, f[5].0: f[5].1]
    case 7: return [f[0].0: f[0].1, f[1].0: f[1].1, f[2].0: f[2].1, f[3].0: f[3].1, f[4].0: f[4].1, f[5].0: f[5].1,
                    f[6].0: f[6].1]
    case 8: return [f[0].0: f[0].1, f[1].0: f[1].1, f[2].0: f[2].1, f[3].0: f[3].1, f[4].0: f[4].1, f[5].0: f[5].1,
                    f[6].0: f[6].1, f[7].0: f[7].1]
    case 9: return [f[0].0: f[0].1, f[1].0: f[1].1, f[2].0: f[2].1, f[3].0: f[3].1, f[4].0: f[4].1, f[5].0: f[5].1,
                    f[6].0: f[6].1, f[7].0: f[7].1, f[8].0: f[8].1]
    case 10: return [f[0].0: f[0].1, f[1].0: f[1].1, f[2].0: f[2].1, f[3].0: f[3].1, f[4].0: f[4].1, f[5].0: f[5].1,
                     f[6].0: f[6].1, f[7].0: f[7].1, f[8].0: f[8].1, f[9].0: f[9].1]
    case 11: return [f[0].0: f[0].1, f[1].0: f[1].1, f[2].0: f[2].1, f[3].0: f[3].1, f[4].0: f[4].1, f[5].0: f[5].1,
                     f[6].0: f[6].1, f[7].0: f[7].1, f[8].0: f[8].1, f[9].0: f[9].1, f[10].0: f[10].1]
    default: return [f[0].0: f[0].1, f[1].0: f[1].1, f[2].0: f[2].1, f[3].0: f[3].1, f[4].0: f[4].1, f[5].0: f[5].1,
                     f[6].0: f[6].1, f[7].0: f[7].1, f[8].0: f[8].1, f[9].0: f[9].1, f[10].0: f[10].1, f[11].0: f[11].1]
    }
}
