import Foundation
import MQTT

/// An MQTT client that subscribes to filters and collects what arrives, for
/// assertions. `init` returns once every subscription is acknowledged.
public final class TestSubscriber: Sendable {
    public let connection: TestClient
    private let received = Recorder<MQTTMessage>()

    public init(endpoint: MQTTEndpoint, filters: [String], qos: Int = 1,
                options: MQTTOptions? = nil, timeout: Double = 10) throws {
        var options = options ?? MQTTOptions(clientID: "test-sub-\(UUID().uuidString.prefix(8))")
        options.reconnectMinSeconds = min(options.reconnectMinSeconds, 0.2)
        options.reconnectMaxSeconds = min(options.reconnectMaxSeconds, 1)
        connection = try TestClient(endpoint: endpoint, options: options)
        connection.onMessage = { [received] message in received.append(message) }
        for filter in filters { try connection.subscribe(filter, qos: qos) }
        try connection.start()
        guard connection.waitUntilSubscribed(timeout: timeout) else {
            connection.stop()
            throw MQTTError(.noConnection, "not connected and subscribed within \(timeout) s",
                            context: "test subscriber on \(endpoint)")
        }
    }

    public convenience init(broker: TestBroker, filters: [String], qos: Int = 1, options: MQTTOptions? = nil) throws {
        try self.init(endpoint: broker.endpoint, filters: filters, qos: qos, options: options)
    }

    deinit { connection.stop() }

    /// Everything received so far, in arrival order.
    public var messages: [MQTTMessage] { received.values }

    /// Waits until at least `count` messages arrived or `timeout` seconds passed;
    /// returns the messages received by then.
    @discardableResult
    public func waitFor(count: Int, timeout: Double = 5) -> [MQTTMessage] {
        received.waitFor(count: count, timeout: timeout)
    }

    /// Waits for the first message satisfying `predicate` (already received ones included).
    public func waitFor(timeout: Double = 5, where predicate: (MQTTMessage) -> Bool) -> MQTTMessage? {
        received.waitFor(timeout: timeout, where: predicate)
    }

    /// Forgets what was received so far.
    public func clear() { received.removeAll() }

    public func stop() { connection.stop() }
}
