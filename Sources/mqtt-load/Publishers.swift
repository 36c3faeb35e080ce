import Dispatch
import Foundation
import MQTT

/// The simulated meters: a few connections (QoS 1 by default), each with a
/// bounded window of unacknowledged messages, sending the meters' readings in turn.
///
/// libmosquitto 2.0.11 walks its whole outgoing queue on every PUBACK, so the
/// window is kept here (a semaphore per connection, released by `onPublished`)
/// and libmosquitto's own queue never grows beyond it. At QoS 0 libmosquitto
/// calls `onPublished` once the message is written to the socket, so the
/// window then bounds what waits in libmosquitto for the broker to read.
final class Publishers: @unchecked Sendable {
    struct Sent {
        var count = 0
        var failed = 0
        var firstNs: UInt64 = 0
        var lastNs: UInt64 = 0
    }

    let connections: [MQTTConnection]
    private let windows: [DispatchSemaphore]
    private let ledger: Ledger
    private let messages: LoadMessages
    private let qos: Int
    /// `onPublished` calls so far, all connections: messages the broker
    /// acknowledged (QoS 1) or that were written to it (QoS 0).
    private let acknowledgements = Mutable(0)
    /// The next global message number; only the main thread moves it, between phases.
    private(set) var next = 0

    init(endpoint: MQTTEndpoint, count: Int, window: Int, qos: Int, ledger: Ledger, enyEvery: Int,
         readingsPerMeter: Int) throws {
        self.ledger = ledger
        self.qos = qos
        messages = LoadMessages(ledger: ledger, enyEvery: enyEvery, readingsPerMeter: readingsPerMeter)
        var connections: [MQTTConnection] = []
        var windows: [DispatchSemaphore] = []
        let pid = getpid()
        for c in 0..<count {
            let options = MQTTOptions(clientID: "mqtt-load-\(pid)-pub\(c)", cleanSession: true, keepAliveSeconds: 60,
                                      maxInflight: window)
            let connection = try MQTTConnection(endpoint: endpoint, options: options)
            let semaphore = DispatchSemaphore(value: window)
            let acknowledgements = acknowledgements
            connection.onPublished = { _ in
                acknowledgements.update { $0 += 1 }
                semaphore.signal()
            }
            connections.append(connection)
            windows.append(semaphore)
        }
        self.connections = connections
        self.windows = windows
    }

    func start(timeout: Double) throws {
        for c in connections { try c.start() }
        for c in connections where !c.waitUntilConnected(timeout: timeout) {
            throw UsageError("cannot connect to \(c.endpoint)")
        }
    }

    func stop() { for c in connections { c.stop() } }

    /// Messages acknowledged (or, at QoS 0, written) so far.
    var acknowledged: Int { acknowledgements.value }

    /// Sends messages `next ..< next + count` as phase `phase`, spread over the
    /// connections; at `rate` msg/s in total (on an absolute schedule, so a
    /// late send does not shift the later ones), or as fast as the windows
    /// allow when `rate` is nil. Returns when all were handed to libmosquitto.
    func send(count: Int, phase: Int, rate: Double?) -> Sent {
        let start = next
        next += count
        let n = connections.count
        let group = DispatchGroup()
        let results = Mutable<[Sent]>(Array(repeating: Sent(), count: n))
        let t0 = monotonicNs()
        for c in 0..<n {
            group.enter()
            let thread = Thread { [self] in
                var sent = Sent()
                var k = 0
                var g = start + c
                while g < start + count {
                    if let rate {
                        let due = t0 + UInt64(Double(k * n + c) / rate * 1e9)
                        let now = monotonicNs()
                        if due > now {
                            var pause = timespec(tv_sec: Int(due - now) / 1_000_000_000, tv_nsec: Int(due - now) % 1_000_000_000)
                            nanosleep(&pause, nil)
                        }
                    }
                    if publish(g, on: c, phase: phase, into: &sent) == false { sent.failed += 1 }
                    k += 1
                    g += n
                }
                results.update { $0[c] = sent }
                group.leave()
            }
            thread.name = "load-pub\(c)"
            thread.start()
        }
        group.wait()
        var total = Sent()
        for s in results.value {
            total.count += s.count
            total.failed += s.failed
            if s.count > 0 {
                total.firstNs = total.firstNs == 0 ? s.firstNs : min(total.firstNs, s.firstNs)
                total.lastNs = max(total.lastNs, s.lastNs)
            }
        }
        return total
    }

    /// Message `g` on connection `c`; false if libmosquitto refused it.
    private func publish(_ g: Int, on c: Int, phase: Int, into sent: inout Sent) -> Bool {
        let (_, topic, payload) = messages.message(g)
        windows[c].wait()
        let now = monotonicNs()
        ledger.recordSend(g, phase: phase, at: now)
        do {
            try connections[c].publish(topic: topic, payload: payload, qos: qos, retain: false)
        } catch {
            windows[c].signal()
            return false
        }
        if sent.count == 0 { sent.firstNs = now }
        sent.lastNs = now
        sent.count += 1
        return true
    }
}

/// A value behind a lock, shared by threads.
final class Mutable<T>: @unchecked Sendable {
    private let lock = NSLock()
    private var stored: T
    init(_ value: T) { stored = value }
    var value: T { lock.withLock { stored } }
    func update(_ body: (inout T) -> Void) { lock.withLock { body(&stored) } }
}
