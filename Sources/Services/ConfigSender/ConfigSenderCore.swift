import Clock
import MQTT
import RuleEngine
import SiteSettings

/// The config sender's logic around `ConfigPlanner`: it turns broker traffic
/// into planner events, runs the planner's actions through
/// `ConfigSenderTransport`, saves the state file, publishes the status and
/// drains at shutdown.
///
/// Pure of threads and sockets: `ConfigSenderService` calls it on its loop
/// thread with events (a discovery message, a reply, a PUBACK, a connection
/// change, a timer, the end of a loop iteration) and asks `nextWake` when to
/// call `tick` next; a unit test does the same with a recording transport.
/// Every time comes in as an argument (`ConfigTime`).
///
/// ## Writes are batched per iteration
/// Events only change the planner. `endOfIteration` — after everything one
/// loop iteration read — hands the records that changed to the state
/// database's writer thread (at most every `saveMinIntervalSeconds`: each
/// commit fsyncs; the loop never waits for the disk, only the shutdown's
/// final flush does) and publishes the status once if it changed (at most every
/// `statusMinIntervalSeconds`, growing by a second per 2,000 meters since
/// each pass compares every meter's retained topics).
///
/// ## Shutdown
/// The host's phases (`ServicePhases`) drive it: `beginDrain` stops new
/// commands and retries; replies still count, and so do timeouts. Once no
/// reply is awaited (`isDrained`, or the host's deadline passed)
/// `publishOffline` saves the state and publishes the offline status.
final class ConfigSenderCore {
    struct Settings {
        var statusTopic: String
        /// Every pack's discovery topic filter (`ProgramSet.discoverySubscriptions`).
        var discoverySubscriptions: [String]
        /// The status is published at most this often.
        var statusMinIntervalSeconds = 1.0
        /// The state database is written at most this often.
        var saveMinIntervalSeconds = 0.1
        /// How long the shutdown waits for the state database's last writes.
        var flushSeconds = 10.0
        /// `config_sender.partition`: only these meters are configured here.
        var partition: Partition?
        /// With an `instance` and discovery from the central broker, which
        /// all shards share: only the meters this instance's proxy announces.
        var instance: String?
    }

    let log: Log
    let store: ConfigStateStore
    let startedAt: Instant
    let settings: Settings
    weak var transport: (any ConfigSenderTransport)?
    private(set) var planner: ConfigPlanner
    /// Commands on demand from the central broker (a relay from Home Assistant).
    private(set) var requests = RelayRequests()
    private(set) var centralConnected = false

    /// Message id → oprid of commands the internal broker has not acknowledged:
    /// a refusal (MQTT 5) names the message id, the planner the oprid.
    private(set) var commandsInFlight: [Int32: String] = [:]
    private var nextSaveAt: MonotonicInstant?
    /// The planner's `statusVersion` last published; nil: publish at the next chance.
    private var publishedStatusVersion: Int?
    /// Each meter's retained topics as published.
    private var meterTopics: MeterTopics
    private var lastStatusAt: MonotonicInstant?
    /// The drain began: no new commands, requests or retries.
    private(set) var isStopping = false

    init(planner: ConfigPlanner, store: ConfigStateStore, settings: Settings, startedAt: Instant, log: Log) {
        self.planner = planner
        self.store = store
        self.settings = settings
        self.meterTopics = MeterTopics(statusTopic: settings.statusTopic)
        self.startedAt = startedAt
        self.log = log
    }

    // MARK: Events

    /// The internal broker connected (its subscriptions were sent before) or went away.
    func internalConnectionChanged(_ connected: Bool, at now: ConfigTime) {
        perform(planner.setInternalConnected(connected, now: now))
    }

    /// The central broker connected or went away. After a connection the status
    /// goes out again: the will may have replaced it with `offline`.
    func centralConnectionChanged(_ connected: Bool) {
        centralConnected = connected
        if connected {
            publishedStatusVersion = nil
            meterTopics.forgetPublished()  // the broker may have lost them: send all again
            publishHealthConfigs()
        }
    }

    /// config-sender's own device in Home Assistant (`HealthDevice.configSender`),
    /// retained; at every central connection.
    private func publishHealthConfigs() {
        let programs = planner.programs
        guard programs.siteConfig.homeAssistant.enabled, let transport, transport.isCentralConnected else { return }
        let origin = Origin(name: "config-sender", version: ServiceVersion.current)
        for config in HealthDevice.configSender.configs(program: programs.first, statusTopic: settings.statusTopic, origin: origin) {
            do {
                _ = try transport.publishStatus(topic: config.topic, payload: config.payload)
            } catch {
                log.limited(.warning, key: "health", "health_config_publish_failed", ["topic": config.topic, "error": error.description])
            }
        }
    }

    /// Whether `topic` is on one of the packs' discovery topics.
    func isDiscovery(_ topic: String) -> Bool {
        settings.discoverySubscriptions.contains { MQTTTopic.matches(filter: $0, topic: topic) }
    }

    /// A message on a discovery subscription (the central broker, or the
    /// internal one with `config_sender.discovery_from: internal`).
    func discoveryReceived(topic: String, payload: [UInt8], at now: ConfigTime) {
        guard isDiscovery(topic) else { return }
        switch DiscoveryMessage.parse(topic: topic, payload: payload) {
        case .meter(let meter) where settings.partition?.contains(meter.id) == false:
            log.debug("discovery_ignored", ["meter": meter.id, "reason": "partition", "partition": settings.partition?.description ?? ""])
            perform(planner.forget(meter.id, now: now))
        case .meter(let meter) where settings.instance != nil && meter.instance != settings.instance:
            log.debug("discovery_ignored", ["meter": meter.id, "reason": "another instance", "instance": meter.instance ?? ""])
            perform(planner.forget(meter.id, now: now))
        case .meter(let meter):
            perform(planner.discovered(meter.id, clockOffsetSeconds: meter.clockOffsetSeconds, now: now))
        case .removed(let id):
            perform(planner.forget(id, now: now))
        case .invalid(let reason):
            log.limited(.warning, key: "discovery_invalid", "discovery_ignored", ["topic": topic, "reason": reason])
        }
    }

    /// A message on the internal broker (a reply topic).
    func replyReceived(topic: String, payload: [UInt8], at now: ConfigTime) {
        guard let reply = planner.programs.parseReply(topic: topic, payload: payload) else {
            log.limited(.warning, key: "reply_malformed", "reply_ignored",
                        ["topic": topic, "reason": "malformed or without oprid", "bytes": String(payload.count)])
            return
        }
        if let actions = requests.reply(reply) {
            performRequests(actions, at: now)
        } else {
            perform(planner.reply(reply, now: now))
        }
    }

    /// A message on a request topic of the central broker (`value: { request: … }`);
    /// `retained`: it came with the retain flag (never carried out).
    func requestReceived(topic: String, payload: [UInt8], retained: Bool, at now: ConfigTime) {
        if retained {
            performRequests(requests.retained(topic: topic), at: now)
            return
        }
        guard !isStopping else {
            log.warning("request_rejected", ["reason": "stopping", "topic": topic])
            return
        }
        var planner = self.planner
        let actions = requests.request(topic: topic, payload: payload, programs: planner.programs, isKnown: planner.isKnown,
                                       operationID: { planner.makeOperationID() },
                                       timeoutSeconds: planner.options.replyTimeoutSeconds, now: now)
        self.planner = planner
        performRequests(actions, at: now)
    }

    /// The internal broker acknowledged command `mid` (PUBACK).
    func commandAcknowledged(_ mid: Int32) {
        commandsInFlight[mid] = nil
    }

    /// MQTT 5: the internal broker refused command `mid` (its ACL): no reply can come.
    func commandRefused(_ mid: Int32, reason: String, at now: ConfigTime) {
        guard let oprid = commandsInFlight.removeValue(forKey: mid) else { return }
        perform(planner.publishRefused(operationID: oprid, reason: reason, now: now))
    }

    /// Timeouts, retries and the periodic pass; call it at `nextWake`.
    func tick(at now: ConfigTime) {
        perform(planner.tick(now: now))
        performRequests(requests.tick(now: now), at: now)
    }

    /// A new programs (config or rules reloaded), compiled cleanly. New
    /// discovery topics are followed after a restart; the host names them
    /// (`HostedService.discoveryTopics`).
    func apply(programs: ProgramSet, options: ConfigPlanner.Options, at now: ConfigTime) {
        let known = Set(planner.programs.replyTopics)
        for topic in programs.replyTopics where !known.contains(topic) {
            do {
                try transport?.subscribeReplies(topic)
            } catch {
                log.error("cannot_subscribe", ["filter": topic, "error": error.description])
            }
        }
        perform(planner.replace(programs: programs, options: options, now: now))
    }

    /// SIGTERM: nothing new goes out; replies in flight are still awaited.
    /// Returns the fields of the `stopping` line.
    func beginDrain() -> [(String, String)] {
        isStopping = true
        planner.drain()
        return [("awaiting_replies", String(planner.awaitingReplyCount))]
    }

    /// No reply is awaited any more.
    var isDrained: Bool { planner.awaitingReplyCount == 0 }

    /// The drain is over: saves every record and publishes the offline status;
    /// its message id, nil when it did not go out.
    func publishOffline(at now: ConfigTime) -> Int32? {
        let left = planner.awaitingReplyCount
        if left > 0 { log.warning("stopping_without_replies", ["awaiting_replies": String(left)]) }
        saveAll()
        return publishStatus(ConfigSenderStatus.offline(now: now.wall).payload)
    }

    /// After every loop iteration, before the loop writes to the sockets.
    func endOfIteration(at now: ConfigTime) {
        guard !isStopping else { return }
        saveIfDue(at: now.monotonic)
        publishStatusIfDue(at: now)
    }

    /// When `tick` (or `endOfIteration`) has work next: the planner's next
    /// deadline, a save or status held back by its interval (the shutdown's
    /// deadlines are the host's). nil: nothing until the next event.
    func nextWake() -> MonotonicInstant? {
        var next = planner.nextDeadline
        if let t = requests.nextDeadline { next = next.map { min($0, t) } ?? t }
        func consider(_ t: MonotonicInstant?) {
            guard let t else { return }
            next = next.map { min($0, t) } ?? t
        }
        if !isStopping {
            if planner.hasUnsaved { consider(nextSaveAt) }
            if centralConnected, publishedStatusVersion != planner.statusVersion, let last = lastStatusAt {
                consider(last.adding(seconds: statusInterval))
            }
        }
        return next
    }

    // MARK: Internals

    private func perform(_ actions: [ConfigPlanner.Action]) {
        for action in actions {
            switch action {
            case .send(let message):
                do {
                    guard let transport else { throw MQTTError(.noConnection, "no transport") }
                    let mid = try transport.publishCommand(topic: message.topic, payload: message.payload)
                    commandsInFlight[mid] = message.operationID
                } catch {
                    // The planner waits for a reply all the same: the timeout retries it.
                    log.error("publish_failed", ["meter": message.deviceID, "command": message.command, "topic": message.topic,
                                                 "error": "\(error)"])
                }
            case .log(let event):
                log.emit(event)
            }
        }
    }

    private func performRequests(_ actions: [RelayRequests.Action], at now: ConfigTime) {
        if !actions.isEmpty { planner.statusChanged() }
        for action in actions {
            switch action {
            case .send(let message):
                perform([.send(message)])
            case .publishState(let topic, let payload):
                do {
                    guard let transport else { throw MQTTError(.noConnection, "no transport") }
                    _ = try transport.publishStatus(topic: topic, payload: payload)
                } catch {
                    log.error("state_publish_failed", ["topic": topic, "error": "\(error)"])
                }
            case .alert(let meter, let command, let message):
                planner.raiseAlert(meter: meter, command: command, message: message, now: now)
            case .clearAlert(let meter, let command):
                if planner.clearAlert(meter: meter, command: command) {
                    log.info("alert_cleared", ["meter": meter, "command": command])
                }
            case .log(let event):
                log.emit(event)
            }
        }
    }

    /// The status's minimum interval: a second per 2,000 meters, at least the setting.
    private var statusInterval: Double { max(settings.statusMinIntervalSeconds, Double(planner.meters.count) / 2_000) }

    /// Hands the records that changed to the writer thread, and logs the
    /// writes that failed since (the writer tries them again).
    private func saveIfDue(at now: MonotonicInstant) {
        for failure in store.takeFailures() {
            log.limited(.error, key: "state_save", "state_save_failed", ["file": store.path, "error": failure])
        }
        guard planner.hasUnsaved else { return }
        if let at = nextSaveAt, now < at { return }
        store.submit(planner.takeUnsaved())
        nextSaveAt = now.adding(seconds: settings.saveMinIntervalSeconds)
    }

    /// Shutdown: everything left goes to the database, waited for (at most `flushSeconds`).
    private func saveAll() {
        store.submit(planner.takeUnsaved())
        if !store.flush(seconds: settings.flushSeconds) {
            log.error("state_save_failed", ["file": store.path, "unsaved_meters": String(store.backlog),
                                            "error": store.takeFailures().last ?? "not written within \(format(settings.flushSeconds)) s"])
        }
    }

    private func publishStatusIfDue(at now: ConfigTime) {
        guard centralConnected, publishedStatusVersion != planner.statusVersion else { return }
        if let last = lastStatusAt, now.monotonic < last.adding(seconds: statusInterval) { return }
        let version = planner.statusVersion
        if publishStatus(statusDocument(state: "online", at: now.wall)) != nil {
            publishedStatusVersion = version
            lastStatusAt = now.monotonic
            publishMeters()
        }
    }

    /// Each meter's retained topics that changed (`MeterTopics`).
    private func publishMeters() {
        guard let transport else { return }
        do throws(MQTTError) {
            try meterTopics.publish(planner, to: transport)
        } catch {
            log.limited(.warning, key: "problem", "meter_state_publish_failed", ["error": error.description])
        }
    }

    private func statusDocument(state: String, at now: Instant) -> [UInt8] {
        var status = planner.statusDocument(state: state, connections: [
            ("internal", planner.internalConnected ? "connected" : "disconnected"),
            ("central", centralConnected ? "connected" : "disconnected"),
        ], startedAt: startedAt, now: now)
        if let problem = store.problem { status.problems = [problem] }
        if !planner.programs.requestSubscriptions.isEmpty {
            status.requests = RelayRequests.counterNames.map { .init(name: $0, value: requests.counters[$0] ?? 0) }
                + [.init(name: "in_flight", value: requests.inFlight.count)]
        }
        status.logLinesDropped = log.droppedLines
        return status.payload
    }

    private func publishStatus(_ document: [UInt8]) -> Int32? {
        guard let transport, transport.isCentralConnected else { return nil }
        do {
            return try transport.publishStatus(topic: settings.statusTopic, payload: document)
        } catch {
            log.limited(.warning, key: "status", "status_publish_failed", ["error": error.description])
            return nil
        }
    }
}

private func format(_ seconds: Double) -> String {
    seconds == seconds.rounded() ? String(Int(seconds)) : String(seconds)
}
