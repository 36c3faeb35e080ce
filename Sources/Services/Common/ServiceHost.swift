import Dispatch
#if canImport(Glibc)
import Glibc
#endif
import Clock
import MQTT
import RuleEngine
import SiteSettings

/// What a service brings to `ServiceHost`: its subscriptions and message
/// handlers, what a broker's coming and going means to it, how a new site is
/// applied, and its part of the shutdown. Every call is on the loop thread.
protocol HostedService: AnyObject {
    /// Subscribes and sets the clients' message and PUBACK handlers (the host
    /// owns `onConnectionChange`); before the clients start.
    func start() throws(ServiceError)
    /// The service's fields of the `started` line (after the host's own).
    var startedFields: [(String, String)] { get }
    /// A broker connected or went away (the host logged it already).
    func connectionChanged(_ broker: ServiceHost.Broker, connected: Bool, reason: String)
    /// After every loop iteration, before the loop writes to the sockets.
    func endOfIteration()
    /// The packs' discovery topics the service follows: subscribed once, so
    /// the host names a reload that changes them (the site config's settings
    /// are `ReloadPolicy`'s).
    var discoveryTopics: [String] { get }
    /// A site that compiled cleanly replaces the running one.
    func apply(_ site: Site)
    /// At most this long the drain waits for work in flight.
    var drainSeconds: Double { get }
    /// The stop request: no new work from now on; the service's fields of the `stopping` line.
    func beginDrain() -> [(String, String)]
    /// Nothing left in flight: the drain may end before its deadline.
    var isDrained: Bool { get }
    /// The drain is over (`complete`: nothing was left): save what must survive,
    /// then publish the offline status (retained, on the central broker) and
    /// return its message id; nil when it did not go out.
    func publishOffline(drainComplete: Bool) -> Int32?
    /// The loop stopped: last saves; the service's fields of the `stopped` line.
    func stopped() -> [(String, String)]
    /// The service's part of systemd's `STATUS=` line.
    var supervisionSummary: String { get }
}

/// The part both services share: one `EventLoop` on the thread that calls
/// `run`, the two broker clients, signals, reload, systemd supervision, the
/// shutdown phases and one log vocabulary for all of it. The service
/// (`HostedService`) keeps only what is its own: its core, its subscriptions,
/// its status's contents.
///
/// - Signals (a dispatch queue, `SignalWatcher`): SIGTERM and SIGINT stop
///   (`stopping signal=SIGTERM`, a second one exits at once); SIGHUP reloads,
///   as systemd's `ExecReload=kill -HUP $MAINPID` sends it. Nothing watches
///   the files: an edit takes effect at the next SIGHUP, never half-written.
/// - Reload: the packs and the site config are linted and compiled on the
///   signal queue (`ServiceControl`), never on the loop; a failure logs each
///   diagnostic (`reload_failed diagnostic="pack.yaml:12:7: error[R004]: …"`)
///   and keeps the running site; a clean site is swapped in on the loop,
///   with one `restart_needed setting=… old=… new=…` warning per changed
///   setting that takes effect only after a restart (`ReloadPolicy`, and the
///   service's own), then `reloaded`.
/// - Connections: `connected broker=internal url=…`, `disconnected broker=…
///   url=… reason=…` (a warning unless stopping), `cannot_connect broker=…
///   url=… reason=…` while a broker was never reached (rate-limited).
/// - Shutdown (`ServicePhases`): drain → offline → finished, then the
///   clients send DISCONNECT (the broker drops the will) and `run` returns.
///
/// Loop thread only, except `control` and `log`.
final class ServiceHost {
    enum Broker: String, CaseIterable { case `internal`, central }

    /// `kpm33b-proxy`, `config-sender`: the `started` line's `service`.
    let name: String
    let log: Log
    let options: ServiceOptions
    let loop: EventLoop
    let internalClient: MQTTClient
    let centralClient: MQTTClient
    /// Stop and reload requests, from any thread.
    let control: ServiceControl
    /// The running site: the one started with, or the last reload's.
    private(set) var site: Site
    private(set) var phases = ServicePhases()
    /// How long the offline status may take to be acknowledged.
    static let offlineAckSeconds = 2.0

    /// The service `run` runs, which owns this host. Not weak: a weak
    /// reference gives the service a side table, and then every retain and
    /// release of it — several per reading through the clients' handlers —
    /// takes the runtime's slow path. unowned(unsafe): the service owns this
    /// host and is in its `run` whenever the loop calls back (a checked load
    /// costs a retain and a release every iteration).
    private unowned(unsafe) var service: (any HostedService)?
    /// Whose settings a reload compares (`ReloadPolicy`).
    private let siteService: SiteService
    private var wasConnected: [Broker: Bool] = [:]
    private var systemd: SystemdSupervision?
    private var phaseTimer: LoopTimer?

    /// How the service connects to one broker, beside the site's settings.
    struct Connection {
        /// false: a persistent session (messages queued while away).
        var cleanSession: Bool
        var will: MQTTWill? = nil
        /// No window of libmosquitto's own (the service keeps one).
        var unlimitedInflight = false
    }

    /// Under sustained input the loop waits up to 0.5 ms before reading again,
    /// so that a burst is read, journalled and written in batches instead of
    /// one message per iteration (see `EventLoop`): at most 0.5 ms more latency
    /// for a reading, none for an idle or slow fleet (gaps over 0.5 ms). An
    /// iteration with 16 messages and acknowledgements does not wait: below Mosquitto's default
    /// window of 20 unacknowledged QoS 1 messages per client, so a QoS 1
    /// stream that fills the window each round trip is not slowed down.
    static let coalescing = EventLoop.Coalescing(maxDelay: 0.0005, batch: 16)

    /// Creates the loop and both clients (nothing connects before `run`).
    /// - Parameters:
    ///   - service: whose client entries (`clients.proxy`) and settings the site config has.
    ///   - clientID: the client id when the site config names none.
    init(name: String, service: SiteService, clientID: String, site: Site, options: ServiceOptions, log: Log,
         internal internalConnection: Connection, central centralConnection: Connection) throws(ServiceError) {
        self.name = name
        self.siteService = service
        let client = service.rawValue
        self.site = site
        self.options = options
        self.log = log
        let internalSettings = try Self.settings(.internal, site: site, options: options, client: client, clientID: clientID, internalConnection)
        let centralSettings = try Self.settings(.central, site: site, options: options, client: client, clientID: clientID, centralConnection)
        do {
            loop = try EventLoop()
            loop.coalescing = Self.coalescing
            // Without libmosquitto's wake-up socket pair: it writes a byte to
            // it for every packet it queues (a write(2) per reading, for a
            // select() this loop never runs; `MQTTClient.init`).
            internalClient = try MQTTClient(loop: loop, endpoint: internalSettings.endpoint, options: internalSettings.options,
                                            dropSocketPair: true)
            centralClient = try MQTTClient(loop: loop, endpoint: centralSettings.endpoint, options: centralSettings.options,
                                           dropSocketPair: true)
        } catch {
            throw ServiceError(error.description)
        }
        control = ServiceControl(loop: loop) { [options, log] trigger in Self.compile(options: options, log: log, trigger: trigger) }
    }

    /// A broker's settings from the site config, the command line's override and `connection`.
    private static func settings(_ broker: Broker, site: Site, options: ServiceOptions, client: String, clientID: String,
                                 _ connection: Connection) throws(ServiceError) -> BrokerSettings {
        var settings = try BrokerSettings(settings: site.settings, broker: broker.rawValue, client: client,
                                          override: broker == .internal ? options.internalURL : options.centralURL,
                                          defaultClientID: clientID, instance: site.program.instance,
                                          cleanSession: connection.cleanSession, will: connection.will)
        if connection.unlimitedInflight { settings.options.maxInflight = 0 }
        return settings
    }

    func client(_ broker: Broker) -> MQTTClient { broker == .internal ? internalClient : centralClient }

    // MARK: Running

    /// Starts `service`, connects, and runs the loop on the calling thread
    /// until a stop request has gone through the phases. Returns the exit status.
    func run(_ service: any HostedService, handleSignals: Bool = true) -> Int32 {
        self.service = service
        let control = self.control, log = self.log
        let watcher = handleSignals ? SignalWatcher { signal in
            if signal == SIGHUP {
                control.requestReload(trigger: SignalWatcher.name(signal))
            } else if !control.requestStop(reason: SignalWatcher.name(signal)) {
                log.warning("second_stop_signal", ["signal": SignalWatcher.name(signal), "detail": "exiting without draining"])
                log.flush()
                exit(1)
            }
        } : nil
        defer { withExtendedLifetime(watcher) {} }

        systemd = SystemdSupervision(loop: loop, log: log, brokers: Broker.allCases.map(\.rawValue)) { [unowned self] in
            self.service?.supervisionSummary ?? ""
        }
        for broker in Broker.allCases { wire(broker) }
        do {
            try service.start()
        } catch {
            log.error("cannot_start", ["error": error.message])
            return 1
        }
        internalClient.start()
        centralClient.start()
        // Every iteration: unowned(unsafe), as the loop is this host's and runs only inside this call.
        loop.addIterationHook { [unowned(unsafe) self] in endOfIteration() }
        log.info("started", fields: [
            ("service", name), ("version", ServiceVersion.current), ("packs", site.programs.packNames.joined(separator: ",")),
            ("internal", internalClient.endpoint.description), ("central", centralClient.endpoint.description),
        ] + service.startedFields)
        systemd?.ready()
        loop.run()

        let fields = service.stopped()
        // How much the loop batched: messages and acknowledgements per iteration, and the coalescing waits
        // (those awaiting a full window's acknowledgements, and how many of them input cut short).
        let loopFigures = loop.figures
        log.info("stopped", fields: [("signal", phases.reason ?? "stop")] + fields + [
            ("loop_iterations", String(loopFigures.iterations)), ("loop_received", String(loopFigures.received)),
            ("loop_acknowledgements", String(loopFigures.acknowledgements)),
            ("loop_waits", String(loopFigures.waits)), ("loop_waited_ms", String(Int(loopFigures.waitedSeconds * 1000))),
            ("loop_waits_for_acknowledgements", String(loopFigures.waitsForAcknowledgements)),
            ("loop_waits_cut_short", String(loopFigures.waitsCutShort)),
        ])
        return 0
    }

    /// The iteration hook: requests from other threads, the service's end of
    /// iteration, and the shutdown phases.
    private func endOfIteration() {
        guard let service else { return }
        if control.hasRequests {
            let requests = control.take()
            if let reason = requests.stop { beginStop(reason: reason, service) }
            if let site = requests.site { apply(site, service) }
        }
        service.endOfIteration()
        advancePhases(service)
    }

    private func beginStop(reason: String, _ service: any HostedService) {
        let seconds = service.drainSeconds
        guard phases.stop(reason: reason, drainSeconds: seconds, now: .now()) else { return }
        systemd?.stopping("draining for up to \(Int(seconds.rounded(.up))) s")
        watchOfflineAcknowledgement()
        let fields = service.beginDrain()
        log.info("stopping", fields: [("signal", reason), ("drain_s", format(seconds))] + fields)
    }

    /// From the drain on, the offline status's PUBACK ends the offline phase;
    /// the service's handler runs too. Wrapped only now: while the service
    /// runs, every reading's PUBACK goes to its handler with no closure of the
    /// host's in between. unowned(unsafe), as the client is this host's and
    /// calls it only while the loop runs inside `run` (an unowned load costs a
    /// retain and a release per call).
    private func watchOfflineAcknowledgement() {
        let servicePublished = centralClient.onPublished
        centralClient.onPublished = { [unowned(unsafe) self] mid in
            phases.acknowledged(mid)
            servicePublished?(mid)
        }
    }

    private func advancePhases(_ service: any HostedService) {
        guard !phases.isRunning else { return }
        let now = MonotonicInstant.now()
        switch phases.advance(drained: service.isDrained, now: now) {
        case .drainEnded(let complete):
            phases.offlinePublished(mid: service.publishOffline(drainComplete: complete), ackSeconds: Self.offlineAckSeconds, now: now)
        case .offlineNotAcknowledged:
            log.warning("offline_status_not_acknowledged", ["wait_s": format(Self.offlineAckSeconds)])
        case nil:
            break
        }
        if phases.isFinished {
            // Each stop() writes its DISCONNECT now, so the broker drops the will.
            internalClient.stop()
            centralClient.stop()
            loop.stop()
        } else if let deadline = phases.deadline, phaseTimer == nil {
            // Wake up at the deadline even if nothing arrives; the timers never fire early.
            phaseTimer = loop.schedule(after: max(0, deadline.seconds(since: now))) { [unowned self] in phaseTimer = nil }
        }
    }

    // MARK: Connections

    private func wire(_ broker: Broker) {
        let client = client(broker)
        client.onConnectionChange = { [unowned self] connected, reason in
            let url = client.endpoint.description
            if connected {
                log.info("connected", ["broker": broker.rawValue, "url": url])
            } else if wasConnected[broker] == true {
                log.log(phases.isRunning ? .warning : .info, "disconnected", ["broker": broker.rawValue, "url": url, "reason": reason])
            } else {
                log.limited(.warning, key: "cannot_connect.\(broker)", "cannot_connect", ["broker": broker.rawValue, "url": url, "reason": reason])
            }
            wasConnected[broker] = connected
            systemd?.brokerChanged(broker.rawValue, connected: connected, reason: reason)
            service?.connectionChanged(broker, connected: connected, reason: reason)
        }
        client.onSubscriptionRejected = { [unowned self] filter in
            log.error("subscription_refused", ["broker": broker.rawValue, "filter": filter])
        }
    }

    // MARK: Reload

    /// The off-loop half of a reload (`ServiceControl.requestReload`): the
    /// same load → check → compile path as start-up; nil when it failed, every
    /// error logged with its `file:line:column`.
    private static func compile(options: ServiceOptions, log: Log, trigger: String) -> Site? {
        log.info("reloading", ["signal": trigger, "rules": options.rules, "config": options.config ?? "(defaults)"])
        do throws(DiagnosticReport) {
            let site = try Site.load(rules: options.rulePaths, config: options.config)
            for d in site.warnings.diagnostics { log.warning("config_warning", ["diagnostic": d.headline, "hint": d.hint ?? ""]) }
            return site
        } catch {
            for d in error.diagnostics where d.severity == .error {
                log.error("reload_failed", ["diagnostic": d.headline, "hint": d.hint ?? ""])
            }
            log.error("reload_failed", ["errors": String(error.diagnostics.count { $0.severity == .error }),
                                        "action": "keeping the running configuration"])
            return nil
        }
    }

    /// The on-loop half: names each changed setting that needs a restart, then swaps.
    private func apply(_ new: Site, _ service: any HostedService) {
        guard phases.isRunning else { return }
        let changes = ReloadPolicy.changes(from: site, to: new, for: siteService)
        var restart = changes.filter { $0.effect == .restart }
        let topics = new.programs.discoverySubscriptions
        if topics != service.discoveryTopics {
            restart.append(SettingChange(path: "packs' discovery topics", old: service.discoveryTopics.joined(separator: ","),
                                         new: topics.joined(separator: ","), effect: .restart))
        }
        for change in restart {
            log.warning("restart_needed", ["setting": change.path, "old": change.old, "new": change.new,
                                           "detail": "the running value stays until a restart"])
        }
        log.level = options.logLevel(for: new.settings)
        site = new
        service.apply(new)
        log.info("reloaded", ["packs": new.programs.packNames.joined(separator: ","), "restart_needed": String(restart.count),
                              "applied": String(changes.count { $0.effect == .live })])
    }
}

private func format(_ seconds: Double) -> String {
    seconds == seconds.rounded() ? String(Int(seconds)) : String(seconds)
}
