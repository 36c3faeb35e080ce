import Clock
import MQTT
import RuleEngine

/// A service's side of systemd supervision, on its event loop (loop thread
/// only): `READY=1` when the service is up, `WATCHDOG=1` from a loop timer at
/// half of `$WATCHDOG_USEC` (a stuck loop stops it, and systemd restarts the
/// service), a one-line `STATUS=` every `statusIntervalSeconds` and whenever a
/// broker's reachability changes, `STOPPING=1` when the drain starts.
///
/// Does nothing (no timers either) when the service does not run under
/// systemd's notify protocol (`SystemdNotifier` is nil).
final class SystemdSupervision {
    static let statusIntervalSeconds = 10.0

    private let notifier: SystemdNotifier?
    private let loop: EventLoop
    private let log: Log
    /// The service's own part of the status line (meters, rates, depth).
    private let summary: () -> String
    /// Per broker, in the order given: nil while connected, else why not.
    private var brokers: [(name: String, problem: String?)]
    private var timers: [LoopTimer] = []
    private var isReady = false
    private var isStopping = false

    init(loop: EventLoop, log: Log, brokers: [String], environment: [String: String] = FileSystem.environment,
         summary: @escaping () -> String) {
        self.notifier = SystemdNotifier(environment: environment)
        self.loop = loop
        self.log = log
        self.brokers = brokers.map { ($0, "connecting") }
        self.summary = summary
    }

    /// The service is up: its state is open and the first connection
    /// attempts are made. A broker that is not reachable yet is named in the
    /// status, not a reason to wait (the service retries, and works without it).
    func ready() {
        guard let notifier, !isReady else { return }
        isReady = true
        notifier.send([("READY", "1"), ("STATUS", statusLine)])
        if let interval = notifier.watchdogInterval {
            notifier.send([("WATCHDOG", "1")])
            timers.append(loop.repeating(every: interval) { [unowned self] in
                self.notifier?.send([("WATCHDOG", "1")])
            })
        }
        timers.append(loop.repeating(every: Self.statusIntervalSeconds) { [unowned self] in sendStatus() })
        log.debug("systemd_notified", ["ready": "1", "watchdog_s": notifier.watchdogInterval.map { String($0) } ?? "off"])
    }

    /// From a client's `onConnectionChange`: the status says at once when a
    /// broker becomes unreachable (with the reason) or reachable again.
    func brokerChanged(_ name: String, connected: Bool, reason: String) {
        guard let i = brokers.firstIndex(where: { $0.name == name }) else { return }
        let problem: String? = connected ? nil : reason
        guard brokers[i].problem != problem else { return }
        brokers[i].problem = problem
        if isReady && !isStopping { sendStatus() }
    }

    /// SIGTERM: the service stopped taking input and drains.
    func stopping(_ detail: String) {
        guard let notifier, !isStopping else { return }
        isStopping = true
        notifier.send([("STOPPING", "1"), ("STATUS", "stopping: \(detail)")])
    }

    private func sendStatus() {
        guard !isStopping else { return }
        notifier?.send([("STATUS", statusLine)])
    }

    /// `3 meters, 120 forwarded/min, journal 0 messages; central broker: connection refused: …`.
    var statusLine: String {
        var parts = [summary()]
        for broker in brokers {
            if let problem = broker.problem { parts.append("\(broker.name) broker: \(problem)") }
        }
        let dropped = log.droppedLines
        if dropped > 0 { parts.append("\(dropped) log lines dropped") }
        return parts.joined(separator: "; ")
    }
}

/// A counter's rate per minute between two readings (the status line's).
final class PerMinute {
    private var previous: (count: Int, at: MonotonicInstant)?

    func rate(_ count: Int, now: MonotonicInstant = .now()) -> Int {
        defer { previous = (count, now) }
        guard let previous, now.seconds(since: previous.at) > 0.5 else { return 0 }
        return max(0, Int((Double(count - previous.count) * 60 / now.seconds(since: previous.at)).rounded()))
    }
}
