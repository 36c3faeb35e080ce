import Dispatch
import Foundation
import MQTT
import Synchronization

/// The simulated meters: a few connections (QoS 1 by default), each an
/// `MQTTClient` on an event loop of its own (a thread per connection) with a
/// bounded window of unacknowledged messages, sending the meters' readings in turn.
///
/// A sending thread per connection paces and numbers its messages and posts
/// each publish to its connection's loop (`execute`). libmosquitto 2.0.11
/// walks its whole outgoing queue on every PUBACK, so the window is kept here
/// (a semaphore per connection, released by `onPublished`) and libmosquitto's
/// own queue never grows beyond it. At QoS 0 libmosquitto calls `onPublished`
/// once the message is written to the socket, so the window then bounds what
/// waits in libmosquitto for the broker to read.
///
/// `@unchecked Sendable`: `next` and `threads` are only touched by the main
/// thread; the rest is immutable, `Sendable`, or loop-bound (the clients).
final class Publishers: @unchecked Sendable {
    struct Sent {
        var count = 0
        var failed = 0
        var firstNs: UInt64 = 0
        var lastNs: UInt64 = 0
    }

    /// One connection: its loop, its client (used on that loop's thread only) and its window.
    private struct Connection {
        let loop: EventLoop
        let client: MQTTClient
        let window: DispatchSemaphore
    }

    private let connections: [Connection]
    private var threads: [LoopThread] = []
    let endpoint: MQTTEndpoint
    private let ledger: Ledger
    private let messages: LoadMessages
    private let qos: Int
    /// `onPublished` calls so far, all connections: messages the broker
    /// acknowledged (QoS 1) or that were written to it (QoS 0).
    private let acknowledgements = Mutable(0)
    private let connected = Mutable(0)
    /// Publishes libmosquitto refused, all connections.
    private let failures = Mutable(0)
    private let lastFailure = Mutable<String?>(nil)
    /// The next global message number; only the main thread moves it, between phases.
    private(set) var next = 0

    init(endpoint: MQTTEndpoint, count: Int, window: Int, qos: Int, ledger: Ledger, enyEvery: Int,
         readingsPerMeter: Int) throws {
        self.endpoint = endpoint
        self.ledger = ledger
        self.qos = qos
        messages = LoadMessages(ledger: ledger, enyEvery: enyEvery, readingsPerMeter: readingsPerMeter)
        var connections: [Connection] = []
        let pid = getpid()
        for c in 0..<count {
            let options = MQTTOptions(clientID: "mqtt-load-\(pid)-pub\(c)", cleanSession: true, keepAliveSeconds: 60,
                                      maxInflight: window)
            let loop = try EventLoop()
            connections.append(Connection(loop: loop, client: try MQTTClient(loop: loop, endpoint: endpoint, options: options),
                                          window: DispatchSemaphore(value: window)))
        }
        self.connections = connections
    }

    func start(timeout: Double) throws {
        let acknowledgements = acknowledgements, connected = connected, lastFailure = lastFailure
        for (c, connection) in connections.enumerated() {
            // Before the loop's thread runs: nothing else touches the client yet.
            let window = connection.window
            var wasConnected = false
            connection.client.onPublished = { _ in
                acknowledgements.update { $0 += 1 }
                window.signal()
            }
            connection.client.onConnectionChange = { isUp, reason in
                if isUp && !wasConnected { connected.update { $0 += 1 } }
                if !isUp { lastFailure.update { $0 = reason } }
                wasConnected = wasConnected || isUp
            }
            threads.append(connection.loop.startThread(name: "load-pub\(c)"))
            let client = connection.client
            connection.loop.execute { client.start() }
        }
        let deadline = monotonicNs() + UInt64(timeout * 1e9)
        while connected.value < connections.count {
            guard monotonicNs() < deadline else {
                throw UsageError("cannot connect to \(endpoint)" + (lastFailure.value.map { ": \($0)" } ?? ""))
            }
            usleep(10_000)
        }
    }

    func stop() {
        for connection in connections {
            let client = connection.client
            let done = DispatchSemaphore(value: 0)
            connection.loop.execute {
                client.stop()
                done.signal()
            }
            done.wait()
            connection.loop.stop()
        }
        for thread in threads { thread.join() }
        threads = []
    }

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
        let failedBefore = failures.value
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
                    publish(g, on: c, phase: phase, into: &sent)
                    k += 1
                    g += n
                }
                // The posted publishes ran once a task posted after them has.
                let flushed = DispatchSemaphore(value: 0)
                connections[c].loop.execute { flushed.signal() }
                flushed.wait()
                results.update { $0[c] = sent }
                group.leave()
            }
            thread.name = "load-send\(c)"
            thread.start()
        }
        group.wait()
        var total = Sent()
        for s in results.value {
            total.count += s.count
            if s.count > 0 {
                total.firstNs = total.firstNs == 0 ? s.firstNs : min(total.firstNs, s.firstNs)
                total.lastNs = max(total.lastNs, s.lastNs)
            }
        }
        total.failed = failures.value - failedBefore
        total.count -= total.failed
        return total
    }

    /// Message `g` on connection `c`, posted to its loop; a publish
    /// libmosquitto refuses there counts in `failures`.
    private func publish(_ g: Int, on c: Int, phase: Int, into sent: inout Sent) {
        let (_, topic, payload) = messages.message(g)
        let connection = connections[c]
        Publishers.post(g, topic: topic, payload: payload, qos: qos, phase: phase, client: connection.client, loop: connection.loop,
                        window: connection.window, failures: failures, ledger: ledger, into: &sent)
    }

    /// Message `g`'s publish posted to `loop` (its client's) once `window` has
    /// room, and counted in `sent`; a publish libmosquitto refuses there gives
    /// its slot back and counts in `failures`.
    static func post(_ g: Int, topic: String, payload: [UInt8], qos: Int, phase: Int, client: MQTTClient, loop: EventLoop,
                     window: DispatchSemaphore, failures: Mutable<Int>, ledger: Ledger, into sent: inout Sent) {
        window.wait()
        let now = monotonicNs()
        ledger.recordSend(g, phase: phase, at: now)
        loop.execute {
            do {
                try client.publish(topic: topic, payload: payload, qos: qos, retain: false)
            } catch {
                window.signal()
                failures.update { $0 += 1 }
            }
        }
        if sent.count == 0 { sent.firstNs = now }
        sent.lastNs = now
        sent.count += 1
    }
}

/// A value behind a lock, shared by threads.
final class Mutable<T: Sendable>: Sendable {
    private let stored: Mutex<T>
    init(_ value: T) { stored = Mutex(value) }
    var value: T { stored.withLock { $0 } }
    func update(_ body: (inout T) -> Void) { stored.withLock { body(&$0) } }
}
