import Dispatch
import Foundation
import MQTT

/// What `main` needs of the simulated meters, whichever transport carries them.
protocol LoadPublishers: AnyObject, Sendable {
    func start(timeout: Double) throws
    func stop()
    /// Sends messages `next ..< next + count` as phase `phase` (see `Publishers.send`).
    func send(count: Int, phase: Int, rate: Double?) -> Publishers.Sent
    /// Messages acknowledged (or, at QoS 0, written) so far.
    var acknowledged: Int { get }
    /// The next global message number.
    var next: Int { get }
}

extension Publishers: LoadPublishers {}

/// `--connection-per-meter`: every meter its own MQTT connection (client id
/// `mqtt-load-PID-mNNNNN`), all driven by one `EventLoop` thread, as
/// `meter-sim` does; message `g` goes out on meter `g % meters`'s connection.
///
/// The caller's thread paces and numbers the messages and posts each publish
/// to the loop (`execute`); `--window` bounds the messages in flight over all
/// connections together (a semaphore released by `onPublished`). Each client
/// drops libmosquitto's idle socket pair, so a meter costs one descriptor.
/// `@unchecked Sendable`: `next` and `thread` are only touched by the main
/// thread; the rest is immutable, `Sendable`, or loop-bound (the clients).
final class MeterPublishers: LoadPublishers, @unchecked Sendable {
    private let loop: EventLoop
    private var thread: LoopThread?
    private let clients: [MQTTClient]
    private let window: DispatchSemaphore
    private let ledger: Ledger
    private let messages: LoadMessages
    private let qos: Int
    private let acknowledgements = Mutable(0)
    private let connected = Mutable(0)
    private let failures = Mutable(0)
    /// The last reason a connection failed, for the error message.
    private let lastFailure = Mutable<String?>(nil)
    private(set) var next = 0

    init(endpoint: MQTTEndpoint, window: Int, qos: Int, ledger: Ledger, enyEvery: Int, readingsPerMeter: Int) throws {
        self.ledger = ledger
        self.qos = qos
        self.window = DispatchSemaphore(value: window)
        messages = LoadMessages(ledger: ledger, enyEvery: enyEvery, readingsPerMeter: readingsPerMeter)
        loop = try EventLoop()
        let pid = getpid()
        var clients: [MQTTClient] = []
        for m in 0..<ledger.meters {
            let options = MQTTOptions(clientID: "mqtt-load-\(pid)-m\(m)", cleanSession: true, keepAliveSeconds: 60,
                                      maxInflight: window)
            clients.append(try MQTTClient(loop: loop, endpoint: endpoint, options: options, dropSocketPair: true))
        }
        self.clients = clients
    }

    /// Descriptors the clients hold (1 each, 3 where the socket pair stayed).
    var descriptors: Int { clients.reduce(0) { $0 + ($1.holdsSocketPair ? 3 : 1) } }

    func start(timeout: Double) throws {
        let acknowledgements = acknowledgements, window = window, connected = connected, lastFailure = lastFailure
        for client in clients {
            var wasConnected = false
            client.onPublished = { _ in
                acknowledgements.update { $0 += 1 }
                window.signal()
            }
            client.onConnectionChange = { isUp, reason in
                if isUp && !wasConnected { connected.update { $0 += 1 } }
                if !isUp { lastFailure.update { $0 = reason } }
                wasConnected = wasConnected || isUp
            }
        }
        thread = loop.startThread(name: "load-meters")
        loop.execute { [clients] in for client in clients { client.start() } }
        let deadline = monotonicNs() + UInt64(timeout * 1e9)
        while connected.value < clients.count {
            guard monotonicNs() < deadline else {
                throw UsageError("\(connected.value) of \(clients.count) meter connections came up within \(timeout) s"
                                 + (lastFailure.value.map { "; last failure: \($0)" } ?? ""))
            }
            usleep(10_000)
        }
    }

    func stop() {
        let done = DispatchSemaphore(value: 0)
        loop.execute { [clients] in
            for client in clients { client.stop() }
            done.signal()
        }
        done.wait()
        loop.stop()
        thread?.join()
    }

    var acknowledged: Int { acknowledgements.value }

    func send(count: Int, phase: Int, rate: Double?) -> Publishers.Sent {
        let start = next
        next += count
        var sent = Publishers.Sent()
        let t0 = monotonicNs()
        let failedBefore = failures.value
        for (k, g) in (start..<(start + count)).enumerated() {
            if let rate {
                let due = t0 + UInt64(Double(k) / rate * 1e9)
                let now = monotonicNs()
                if due > now {
                    var pause = timespec(tv_sec: Int(due - now) / 1_000_000_000, tv_nsec: Int(due - now) % 1_000_000_000)
                    nanosleep(&pause, nil)
                }
            }
            let (meter, topic, payload) = messages.message(g)
            Publishers.post(g, topic: topic, payload: payload, qos: qos, phase: phase, client: clients[meter], loop: loop,
                            window: window, failures: failures, ledger: ledger, into: &sent)
        }
        // The posted publishes ran once a task posted after them has.
        let flushed = DispatchSemaphore(value: 0)
        loop.execute { flushed.signal() }
        flushed.wait()
        let failed = failures.value - failedBefore
        sent.failed = failed
        sent.count -= failed
        return sent
    }
}
