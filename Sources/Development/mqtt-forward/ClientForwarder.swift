import MQTT
#if canImport(Glibc)
import Glibc
#endif

/// The floor of the project's transport: the same forwarding as
/// `RawForwarder`, over two `MQTTClient`s on one `EventLoop` with the
/// proxy's options (`ServiceHost`'s: MQTT 5, persistent sessions, keepalive
/// 30 s, no in-flight limit on the central side) — what the proxy pays for
/// its transport before any rule, journal or delivery bookkeeping. Each
/// message goes from `onMessage` to `MQTTClient.publish(topicBytes:…)`, the
/// call the proxy's delivery makes. Loop thread only, after `run` started.
final class ClientForwarder {
    let options: ForwardOptions
    let loop: EventLoop
    private let inbound: MQTTClient
    private let outbound: MQTTClient
    /// `options.prefix` followed by the incoming topic's bytes; reused.
    private var topic: [UInt8]
    private var ready = (inbound: false, outbound: false)
    private var announced = false
    private var failed: String?
    /// Disconnecting on purpose: the connection changes are no failure.
    private var stopping = false
    private(set) var forwarded = 0
    private(set) var refused = 0

    init(options: ForwardOptions) throws(ForwardError) {
        self.options = options
        topic = Array(options.prefix.utf8)
        do {
            loop = try EventLoop()
            let internalEndpoint = MQTTEndpoint(host: options.internalBroker.host, port: options.internalBroker.port, tls: false)
            let centralEndpoint = MQTTEndpoint(host: options.centralBroker.host, port: options.centralBroker.port, tls: false)
            inbound = try MQTTClient(loop: loop, endpoint: internalEndpoint, options: MQTTOptions(
                clientID: options.clientID + "-in", cleanSession: false, protocolVersion: .v5, keepAliveSeconds: 30))
            outbound = try MQTTClient(loop: loop, endpoint: centralEndpoint, options: MQTTOptions(
                clientID: options.clientID + "-out", cleanSession: false, protocolVersion: .v5, keepAliveSeconds: 30, maxInflight: 0))
        } catch {
            throw ForwardError("\(error)")
        }
    }

    /// Connects, subscribes and runs the loop on the calling thread until
    /// `loop.stop()` (the signal waiter) or a lost connection. Returns the exit status.
    func run() throws(ForwardError) -> Int32 {
        inbound.onMessage = { [unowned self] message in forward(message) }
        outbound.onPublishRejected = { [unowned self] _, _, _ in refused += 1 }
        inbound.onSubscriptionsSettled = { [unowned self] in ready.inbound = true; announce() }
        inbound.onSubscriptionRejected = { [unowned self] _ in fail("the internal broker refused the subscription") }
        inbound.onConnectionChange = { [unowned self] connected, reason in if !connected { fail("the internal connection ended: \(reason)") } }
        outbound.onConnectionChange = { [unowned self] connected, reason in
            if connected { ready.outbound = true; announce() } else { fail("the central connection ended: \(reason)") }
        }
        do {
            try inbound.subscribe(options.filter, qos: options.subscribeQoS)
        } catch {
            throw ForwardError("\(error)")
        }
        outbound.start()
        inbound.start()
        loop.run()
        stopping = true
        inbound.stop()
        outbound.stop()
        if let failed {
            emit("mqtt-forward: msg=failed error=\"\(failed)\" forwarded=\(forwarded)")
            return 1
        }
        emit("mqtt-forward: msg=stopped forwarded=\(forwarded) refused=\(refused)")
        return 0
    }

    private func forward(_ message: MQTTBorrowedMessage) {
        let prefix = options.prefix.utf8.count
        topic.removeSubrange(prefix...)
        topic.append(contentsOf: message.topic.utf8)
        let sent = topic.withUnsafeBytes { topicBytes in
            (try? outbound.publish(topicBytes: topicBytes, payload: message.payload, qos: 1, retain: false)) != nil
        }
        if sent { forwarded += 1 }
    }

    private func announce() {
        guard ready.inbound && ready.outbound && !announced else { return }
        announced = true
        emit("mqtt-forward: msg=forwarding transport=client filter=\(options.filter) prefix=\(options.prefix)")
    }

    private func fail(_ why: String) {
        guard failed == nil, !stopping else { return }
        failed = why
        loop.stop()
    }
}
