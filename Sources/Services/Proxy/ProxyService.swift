import Foundation
import JSON
import MQTT
import RuleEngine
import SiteSettings

/// `kpm33b-proxy`: meters' broker → compiled program → central broker.
///
/// Threads (the user's architecture):
/// - the internal connection's network thread only counts a message, checks
///   its size and puts it in the `Inbox`;
/// - the *pipeline* thread owns the `Engine` and runs every message through it
///   in arrival order, then appends the results to the `Outbox` (never waits);
/// - the central connection's network thread reports PUBACKs (each one lets
///   the `Outbox` hand over the next message) and Home Assistant's `online`;
/// - the *timer* thread publishes the status and lets split sets expire;
/// - signals arrive on a dispatch queue (`SignalWatcher`).
public final class ProxyService: @unchecked Sendable {
    /// How long SIGTERM waits for the outbox to empty before giving up.
    static let drainSeconds = 3.0
    /// How long the offline status may take to be acknowledged at shutdown.
    static let offlineAckSeconds = 1.0
    /// The outbox bound, the old `outbox_limit` default. The key is deprecated
    /// and ignored: a disk journal bounded by `journal_max_bytes` replaces the outbox.
    static let outboxLimit = 100_000

    let options: ServiceOptions
    let log: Log
    let origin: Origin
    let started = Instant.now()
    let statusTopic: String
    let statistics = ProxyStatistics()
    let inbox = Inbox(capacity: 10_000)
    let outbox: Outbox
    let internalConnection: MQTTConnection
    let centralConnection: MQTTConnection
    let homeAssistantStatusTopic: String?

    /// Guarded by `settingsLock`: the values a reload may change.
    private let settingsLock = NSLock()
    private var maxPayloadBytes: Int
    private var statusIntervalSeconds: Int
    private var subscriptions: Set<String>

    /// The timer thread's wake-up: stop, or a status is due now.
    private let timerCondition = NSCondition()
    private var timerStopped = false
    private var statusDue = false

    private let stopRequested = DispatchSemaphore(value: 0)
    private let stopOnce = NSLock()
    private var stopping = false
    private let pipelineDone = DispatchSemaphore(value: 0)
    private let timerDone = DispatchSemaphore(value: 0)
    /// Touched only by each connection's `onConnectionChange`, which libmosquitto
    /// and the MQTT layer never run twice at once for one connection.
    private var centralEverConnected = false
    private var centralWasConnected = false
    private var internalWasConnected = false

    /// The first program, handed to the pipeline thread when it starts.
    private let initialProgram: Program

    public init(site loaded: Site, options: ServiceOptions, log: Log) throws(ServiceError) {
        let program = loaded.program
        let settings = loaded.settings
        self.options = options
        self.log = log
        self.initialProgram = program
        self.origin = Origin(name: "kpm33b-proxy", version: ServiceVersion.current)
        let site = program.siteConfig
        statusTopic = program.statusTopic
        maxPayloadBytes = settings.proxy.maxPayloadBytes
        statusIntervalSeconds = settings.proxy.statusIntervalSeconds
        subscriptions = Set(program.subscriptions)
        homeAssistantStatusTopic = site.homeAssistant.enabled ? "\(site.homeAssistant.discoveryPrefix)/status" : nil

        let will = MQTTWill(topic: statusTopic, payload: Array(#"{"state":"offline"}"#.utf8), qos: 1, retain: true)
        let internalSettings = try BrokerSettings(settings: settings, broker: "internal", client: "proxy", override: options.internalURL,
                                                  defaultClientID: "kpm33b-proxy", cleanSession: false)
        let centralSettings = try BrokerSettings(settings: settings, broker: "central", client: "proxy", override: options.centralURL,
                                                 defaultClientID: "kpm33b-proxy", cleanSession: false, will: will)
        let central: MQTTConnection
        do {
            internalConnection = try MQTTConnection(endpoint: internalSettings.endpoint, options: internalSettings.options)
            central = try MQTTConnection(endpoint: centralSettings.endpoint, options: centralSettings.options)
        } catch {
            throw ServiceError(error.description)
        }
        centralConnection = central
        outbox = Outbox(limit: Self.outboxLimit) { [statistics, log] message in
            do {
                return try central.publish(topic: message.topic, payload: message.payload, qos: 1, retain: message.retain)
            } catch {
                statistics.countDrop(ProxyStatistics.publishFailed)
                log.limited(.error, key: "publish.failed", "cannot publish", ["topic": message.topic, "error": "\(error)"])
                return nil
            }
        }
    }

    // MARK: Running

    /// Runs until SIGTERM or SIGINT, then shuts down cleanly. Returns the exit status.
    public func run() -> Int32 {
        let watcher = SignalWatcher { [self] signal in
            if signal == SIGHUP { reload() } else { requestStop(signal) }
        }
        defer { withExtendedLifetime(watcher) {} }

        wireCentral()
        wireInternal()
        startThread("pipeline") { [self] in runPipeline(); pipelineDone.signal() }
        startThread("timer") { [self] in runTimer(); timerDone.signal() }
        do {
            for filter in initialProgram.subscriptions { try internalConnection.subscribe(filter, qos: 1) }
            if let topic = homeAssistantStatusTopic { try centralConnection.subscribe(topic, qos: 1) }
            try centralConnection.start()
            try internalConnection.start()
        } catch {
            log.error("cannot start", ["error": "\(error)"])
            return 1
        }
        log.info("started", [
            "version": ServiceVersion.current,
            "internal": internalConnection.endpoint.description,
            "central": centralConnection.endpoint.description,
            "subscriptions": initialProgram.subscriptions.joined(separator: ","),
            "status_topic": statusTopic,
        ])
        stopRequested.wait()
        shutdown()
        return 0
    }

    private func startThread(_ name: String, _ body: @escaping @Sendable () -> Void) {
        let thread = Thread(block: body)
        thread.name = "proxy.\(name)"
        thread.start()
    }

    private var isStopping: Bool { stopOnce.withLock { stopping } }

    private func requestStop(_ signal: Int32) {
        stopOnce.lock()
        let again = stopping
        stopping = true
        stopOnce.unlock()
        if again {
            log.warning("second stop signal: exiting without draining", ["signal": SignalWatcher.name(signal)])
            exit(1)
        }
        log.info("stopping", ["signal": SignalWatcher.name(signal)])
        stopRequested.signal()
    }

    /// Stop taking messages, finish the ones taken, drain the outbox (bounded),
    /// publish the offline status, disconnect.
    private func shutdown() {
        inbox.unbound()
        internalConnection.stop()
        inbox.close()
        pipelineDone.wait()
        let drained = outbox.waitUntilDrained(deadline: Date(timeIntervalSinceNow: Self.drainSeconds))
        if !drained {
            log.warning("outbox not drained before the deadline: messages lost", ["pending": String(outbox.pending)])
        }
        timerCondition.lock()
        timerStopped = true
        timerCondition.broadcast()
        timerCondition.unlock()
        timerDone.wait()
        if centralConnection.isConnected, let mid = publishStatus(state: "offline") {
            if !outbox.waitForAcknowledgement(mid, deadline: Date(timeIntervalSinceNow: Self.offlineAckSeconds)) {
                log.warning("offline status not acknowledged")
            }
        }
        outbox.close()
        centralConnection.stop()
        log.info("stopped", ["received": String(statistics.receivedCount), "forwarded": String(statistics.forwardedCount)])
    }

    // MARK: Connections

    private func wireInternal() {
        internalConnection.onMessage = { [self] message in
            statistics.countReceived()
            let limit = settingsLock.withLock { maxPayloadBytes }
            if message.payload.count > limit {
                statistics.countDrop(ProxyStatistics.tooLarge)
                log.limited(.warning, key: "drop.\(ProxyStatistics.tooLarge)", "dropped input", [
                    "reason": ProxyStatistics.tooLarge, "topic": message.topic,
                    "detail": "\(message.payload.count) bytes, the limit is \(limit)",
                ])
                return
            }
            inbox.push(message)
        }
        internalConnection.onConnectionChange = { [self] connected, reason in
            statistics.setConnected(internal: connected)
            if connected {
                log.info("connected", ["broker": "internal", "url": internalConnection.endpoint.description])
            } else if internalWasConnected {
                log.log(isStopping ? .info : .warning, "disconnected", ["broker": "internal", "reason": reason])
            } else {
                log.limited(.warning, key: "connect.internal", "cannot connect", ["broker": "internal", "reason": reason])
            }
            internalWasConnected = connected
        }
        internalConnection.onSubscriptionRejected = { [self] filter in
            log.error("subscription refused", ["broker": "internal", "filter": filter])
        }
    }

    private func wireCentral() {
        centralConnection.onConnectionChange = { [self] connected, reason in
            statistics.setConnected(central: connected)
            outbox.setConnected(connected)
            if connected {
                log.info("connected", ["broker": "central", "url": centralConnection.endpoint.description])
                // The broker may have lost its retained messages (a restart
                // without persistence): announce every meter again.
                if centralEverConnected { inbox.push(.announce) }
                centralEverConnected = true
                timerCondition.lock()
                statusDue = true
                timerCondition.broadcast()
                timerCondition.unlock()
            } else if centralWasConnected {
                log.log(isStopping ? .info : .warning, "disconnected", ["broker": "central", "reason": reason, "outbox": String(outbox.pending)])
            } else {
                log.limited(.warning, key: "connect.central", "cannot connect", ["broker": "central", "reason": reason])
            }
            centralWasConnected = connected
        }
        centralConnection.onMessage = { [self] message in
            guard message.topic == homeAssistantStatusTopic else { return }
            if message.payload == Array("online".utf8) {
                log.info("Home Assistant is online: announcing the meters again")
                inbox.push(.announce)
            }
        }
        centralConnection.onPublished = { [self] mid in
            if let message = outbox.acknowledged(mid) { statistics.countAcknowledged(message.kind) }
        }
        centralConnection.onPublishRejected = { [self] mid, reason in
            guard let message = outbox.acknowledged(mid) else { return }
            statistics.countDrop(ProxyStatistics.publishFailed)
            log.limited(.error, key: "publish.rejected", "central broker refused a message", ["topic": message.topic, "reason": reason])
        }
        centralConnection.onSubscriptionRejected = { [self] filter in
            log.error("subscription refused", ["broker": "central", "filter": filter])
        }
    }

    // MARK: Pipeline thread

    /// Owns the engine: every event in arrival order, one at a time.
    private func runPipeline() {
        var engine = Engine(program: initialProgram, origin: origin)
        var out = ProcessOutput()
        while let event = inbox.next() {
            let now = Instant.now()
            out.removeAll()
            switch event {
            case .message(let message):
                message.payload.withUnsafeBytes { engine.process(topic: message.topic, payload: $0, now: now, into: &out) }
            case .tick:
                engine.expire(now: now, into: &out)
            case .announce:
                for id in engine.seenDevices { out.messages += engine.announcements(for: id) }
            case .reload(let program):
                let previous = engine.seenDevices
                engine = Engine(program: program, origin: origin)
                log.info("rules reloaded", ["pack": program.packName, "routes": program.routeNames.joined(separator: ",")])
                // The others are announced afresh (groups cleared or added) with their next reading;
                // a meter the new config excludes sends none through, so clear its entities now.
                if program.siteConfig.homeAssistant.enabled {
                    for id in previous where program.isExcluded(id) {
                        out.messages += program.homeAssistantConfigs(for: id, origin: origin)
                    }
                }
            }
            for message in out.messages where message.kind == .data {
                if let id = message.device { statistics.seen(id, at: now) }
            }
            for drop in out.drops { record(drop) }
            let overflow = outbox.append(out.messages)
            if !overflow.isEmpty {
                statistics.countDrop(ProxyStatistics.outboxOverflow, overflow.count)
                log.limited(.warning, key: "drop.\(ProxyStatistics.outboxOverflow)", "outbox full: dropped the oldest message", [
                    "reason": ProxyStatistics.outboxOverflow, "topic": overflow[0].topic, "count": String(overflow.count),
                ])
            }
        }
    }

    private func record(_ drop: Drop) {
        statistics.countDrop(drop.reason.rawValue)
        // Junk the rules expect (half of a real capture) is not news.
        let level: LogLevel = switch drop.reason {
        case .allZero, .duplicate, .excluded: .debug
        default: .warning
        }
        log.limited(level, key: "drop.\(drop.reason.rawValue)", "dropped input", [
            "reason": drop.reason.rawValue, "topic": drop.topic, "detail": drop.detail,
        ])
    }

    // MARK: Timer thread

    private func runTimer() {
        var nextStatus = Date.distantFuture  // the first status follows the central CONNACK
        var nextTick = Date(timeIntervalSinceNow: 1)
        timerCondition.lock()
        while !timerStopped {
            if !statusDue { _ = timerCondition.wait(until: min(nextStatus, nextTick)) }
            if timerStopped { break }
            let due = statusDue || Date() >= nextStatus
            statusDue = false
            timerCondition.unlock()
            if Date() >= nextTick {
                inbox.push(.tick)
                outbox.poke()
                nextTick = Date(timeIntervalSinceNow: 1)
            }
            if due {
                if centralConnection.isConnected { _ = publishStatus(state: "online") }
                let interval = settingsLock.withLock { statusIntervalSeconds }
                nextStatus = Date(timeIntervalSinceNow: Double(interval))
            }
            timerCondition.lock()
        }
        timerCondition.unlock()
    }

    /// Publishes the status document (retained, QoS 1); returns its message id.
    @discardableResult
    private func publishStatus(state: String) -> Int32? {
        let document = statistics.document(state: state, version: ServiceVersion.current, started: started,
                                           now: Instant.now(), outbox: outbox.pending)
        let payload = document.serialized()
        return outbox.publishControl { [self] in
            do {
                return try centralConnection.publish(topic: statusTopic, payload: payload, qos: 1, retain: true)
            } catch {
                log.limited(.error, key: "publish.status", "cannot publish the status", ["error": "\(error)"])
                return nil
            }
        }
    }

    // MARK: Reload

    /// SIGHUP: the same load → check → compile path as start-up; the running
    /// program stays unless the new one compiled cleanly. Broker settings and
    /// the status topic need a restart.
    private func reload() {
        log.info("reloading", ["rules": options.rules, "config": options.config ?? "(defaults)"])
        let loaded: Site
        do throws(DiagnosticReport) {
            loaded = try Site.load(rules: options.rules, config: options.config)
        } catch {
            for d in error.diagnostics where d.severity == .error {
                log.error("reload failed: keeping the running rules", ["diagnostic": d.headline, "hint": d.hint ?? ""])
            }
            return
        }
        let program = loaded.program
        let proxy = loaded.settings.proxy
        if program.statusTopic != statusTopic {
            log.warning("the status topic changed: it takes effect after a restart", ["status_topic": program.statusTopic])
        }
        let added: [String] = settingsLock.withLock {
            maxPayloadBytes = proxy.maxPayloadBytes
            statusIntervalSeconds = proxy.statusIntervalSeconds
            let new = program.subscriptions.filter { !subscriptions.contains($0) }
            subscriptions.formUnion(new)
            return new
        }
        for filter in added {
            do {
                try internalConnection.subscribe(filter, qos: 1)
            } catch {
                log.error("cannot subscribe", ["filter": filter, "error": "\(error)"])
            }
        }
        inbox.push(.reload(program))
    }
}
