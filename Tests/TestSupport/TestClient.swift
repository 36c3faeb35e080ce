import Foundation
import MQTT
import Synchronization

/// An MQTT client for tests that reads like straight-line code: the services'
/// `MQTTClient` on a `TestLoop` of its own. Every call runs on that loop and
/// returns when it is done there (at once when made from one of this client's
/// handlers, which run there); the handlers get copies of the messages and
/// may be set from any thread.
///
/// After `stop()` (or when the client is released) the loop is gone: the
/// client is disconnected, publishing and subscribing throw `.noConnection`.
public final class TestClient: Sendable {
    public let endpoint: MQTTEndpoint
    public let options: MQTTOptions
    private let testLoop: TestLoop
    /// Touched only on `testLoop`'s thread (`call`).
    private let client: MQTTClient
    private let handlers = Handlers()
    private let phase = Mutex(Phase.idle)

    private enum Phase { case idle, started, stopped }

    /// A configured, unstarted client; throws for invalid options (see `MQTTClient.init`).
    public init(endpoint: MQTTEndpoint, options: MQTTOptions) throws {
        self.endpoint = endpoint
        self.options = options
        testLoop = try TestLoop(name: "mqtt-\(options.clientID.prefix(10))")
        client = try MQTTClient(loop: testLoop.loop, endpoint: endpoint, options: options)
        let client = client, handlers = handlers
        let installed = testLoop.waitOnLoop {
            client.onMessage = { message in handlers.onMessage?(message.copy()) }
            client.onConnectionChange = { up, reason in handlers.onConnectionChange?(up, reason) }
            client.onPublished = { mid in handlers.onPublished?(mid) }
            client.onPublishRejected = { mid, _, reason in handlers.onPublishRejected?(mid, reason) }
            client.onSubscriptionRejected = { filter in handlers.onSubscriptionRejected?(filter) }
            return true
        }
        guard installed == true else { throw TestBroker.Failure.setup("the test client's event loop did not answer") }
    }

    deinit { stop() }

    // MARK: Handlers (any thread; called on the client's loop thread)

    /// A received message (a copy).
    public var onMessage: (@Sendable (MQTTMessage) -> Void)? {
        get { handlers.onMessage }
        set { handlers.onMessage = newValue }
    }

    /// `(true, "connected")` after each CONNACK; `(false, reason)` after a lost
    /// connection, each failed attempt, and once after `stop()` if connected.
    public var onConnectionChange: (@Sendable (_ connected: Bool, _ reason: String) -> Void)? {
        get { handlers.onConnectionChange }
        set { handlers.onConnectionChange = newValue }
    }

    /// The broker acknowledged a QoS 1 message, or a QoS 0 message was written.
    public var onPublished: (@Sendable (_ messageID: Int32) -> Void)? {
        get { handlers.onPublished }
        set { handlers.onPublished = newValue }
    }

    /// MQTT 5: the broker acknowledged a message with a failure reason, named in `reason`.
    public var onPublishRejected: (@Sendable (_ messageID: Int32, _ reason: String) -> Void)? {
        get { handlers.onPublishRejected }
        set { handlers.onPublishRejected = newValue }
    }

    /// The broker refused a subscription.
    public var onSubscriptionRejected: (@Sendable (_ filter: String) -> Void)? {
        get { handlers.onSubscriptionRejected }
        set { handlers.onSubscriptionRejected = newValue }
    }

    // MARK: State

    public var isConnected: Bool { call { $0.isConnected } ?? false }

    /// QoS 1/2 messages published and not yet acknowledged (0 once stopped).
    public var unacknowledgedCount: Int { call { $0.unacknowledgedCount } ?? 0 }

    /// Waits until connected, at most `timeout` seconds; true if connected.
    public func waitUntilConnected(timeout: Double) -> Bool {
        waitUntil(timeout: timeout) { isConnected }
    }

    /// Waits until connected with every subscription acknowledged, at most `timeout` seconds.
    public func waitUntilSubscribed(timeout: Double) -> Bool {
        waitUntil(timeout: timeout) { call { $0.isSubscribed } ?? false }
    }

    // MARK: Operations

    /// Connects in the background (`MQTTClient.start`). Throws when already started or stopped.
    public func start() throws(MQTTError) {
        let previous = phase.withLock { phase in
            defer { if phase == .idle { phase = .started } }
            return phase
        }
        guard previous == .idle else {
            throw MQTTError(.invalidArgument, previous == .stopped ? "the connection was stopped" : "already started",
                            context: "start \(endpoint)")
        }
        try result { client in client.start() }
    }

    /// Remembers a subscription and sends it when connected (`MQTTClient.subscribe`).
    public func subscribe(_ filter: String, qos: Int, retainAsPublished: Bool = false) throws(MQTTError) {
        try result { client throws(MQTTError) in try client.subscribe(filter, qos: qos, retainAsPublished: retainAsPublished) }
    }

    /// Publishes a message and returns its id (`MQTTClient.publish`: QoS 1 is
    /// queued while disconnected, QoS 0 throws `.noConnection`).
    @discardableResult
    public func publish(topic: String, payload: [UInt8], qos: Int, retain: Bool) throws(MQTTError) -> Int32 {
        try result { client throws(MQTTError) in try client.publish(topic: topic, payload: payload, qos: qos, retain: retain) }
    }

    /// Disconnects (a DISCONNECT: no will) and ends the client's loop. Idempotent; safe from a handler.
    public func stop() {
        let previous = phase.withLock { phase in
            defer { phase = .stopped }
            return phase
        }
        guard previous != .stopped else { return }
        let client = client
        _ = testLoop.waitOnLoop { client.stop() }
        testLoop.stop()
    }

    // MARK: Internals

    /// `body` run with the client on its loop; nil once stopped or if the loop did not answer.
    private func call<T>(_ body: @escaping @Sendable (MQTTClient) -> T) -> T? {
        guard phase.withLock({ $0 }) != .stopped else { return nil }
        let client = client
        return testLoop.waitOnLoop { body(client) }
    }

    private func result<T>(_ body: @escaping @Sendable (MQTTClient) throws(MQTTError) -> T) throws(MQTTError) -> T {
        guard let outcome = call({ client in Result { () throws(MQTTError) -> T in try body(client) } }) else {
            throw MQTTError(.noConnection, "the connection was stopped", context: "test client \(options.clientID)")
        }
        return try outcome.get()
    }
}

/// The handlers a test set, read by the client's callbacks on its loop.
private final class Handlers: Sendable {
    private struct Values: Sendable {
        var onMessage: (@Sendable (MQTTMessage) -> Void)?
        var onConnectionChange: (@Sendable (Bool, String) -> Void)?
        var onPublished: (@Sendable (Int32) -> Void)?
        var onPublishRejected: (@Sendable (Int32, String) -> Void)?
        var onSubscriptionRejected: (@Sendable (String) -> Void)?
    }
    private let values = Mutex(Values())

    var onMessage: (@Sendable (MQTTMessage) -> Void)? {
        get { values.withLock { $0.onMessage } }
        set { values.withLock { $0.onMessage = newValue } }
    }
    var onConnectionChange: (@Sendable (Bool, String) -> Void)? {
        get { values.withLock { $0.onConnectionChange } }
        set { values.withLock { $0.onConnectionChange = newValue } }
    }
    var onPublished: (@Sendable (Int32) -> Void)? {
        get { values.withLock { $0.onPublished } }
        set { values.withLock { $0.onPublished = newValue } }
    }
    var onPublishRejected: (@Sendable (Int32, String) -> Void)? {
        get { values.withLock { $0.onPublishRejected } }
        set { values.withLock { $0.onPublishRejected = newValue } }
    }
    var onSubscriptionRejected: (@Sendable (String) -> Void)? {
        get { values.withLock { $0.onSubscriptionRejected } }
        set { values.withLock { $0.onSubscriptionRejected = newValue } }
    }
}
