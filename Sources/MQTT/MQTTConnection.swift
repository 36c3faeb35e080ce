internal import CMosquitto
import Topics
import Dispatch
#if canImport(Glibc)
import Glibc
#endif

/// One MQTT client connection over libmosquitto, reconnecting by itself, with
/// a network thread of its own: for tools and tests, which call it from any
/// thread. The services use `MQTTClient` on an `EventLoop` instead (one
/// thread for many connections, and control over when packets are written).
///
/// Thread-safe. Each connection attempt runs libmosquitto's own network loop
/// (`mosquitto_loop_forever`) on a thread of its own; `onMessage`,
/// `onPublished` and most `onConnectionChange` calls arrive on it, one at a
/// time, in arrival order.
///
/// ## Why not `mosquitto_loop_start`
/// `mosquitto_loop_start` creates exactly such a thread running
/// `mosquitto_loop_forever`, but nobody learns when that thread ends: on a
/// "fatal" error (TLS, DNS, protocol) the loop returns, and libmosquitto 2.0.11
/// does not always call the disconnect callback first — a failed TLS
/// handshake (unknown CA) ends the thread silently and the connection would
/// sit dead forever. Running the same loop on our own thread
/// (`mosquitto_threaded_set(true)`, as libmosquitto documents for external
/// threads) tells us when and why it returned.
///
/// ## Reconnecting
/// libmosquitto's built-in reconnect (`mosquitto_reconnect_delay_set`) grows the
/// delay quadratically and has no jitter. So every connection attempt is made
/// here instead, on a small serial *supervisor* queue: when a connection ends,
/// the disconnect callback calls `mosquitto_disconnect`, which makes
/// `mosquitto_loop_forever` return instead of reconnecting on its own; the
/// supervisor joins the ended network thread, waits the next
/// `ReconnectBackoff` delay (1 s doubling to 60 s, ±25 % jitter by default),
/// then calls `mosquitto_connect_async` and starts a new network thread. On
/// every successful CONNACK all remembered subscriptions are sent again. A
/// broker that accepts TCP but never answers CONNECT is given up after the
/// keepalive interval (libmosquitto's keepalive check).
///
/// ## Publishing while disconnected
/// - QoS 1 and 2: the message is *queued* in libmosquitto's memory (it returns
///   `MOSQ_ERR_NO_CONN` but keeps the message; checked against 2.0.11) and is
///   sent after the next CONNACK; `publish` returns its message id and
///   `onPublished` fires when the broker acknowledges it. The queue is
///   unbounded and lives only in this process: `stop()` or an exit loses it.
///   Bound it with `unacknowledgedCount`.
/// - QoS 0: nothing is sent or queued; `publish` throws `.noConnection`.
/// - After `stop()`: every publish throws `.noConnection`.
///
/// ## Lifetime
/// `start()` keeps the connection alive (one retain, through the C user
/// pointer) until `stop()`; an unstarted or stopped connection is freed as
/// usual and `deinit` calls `mosquitto_destroy`.
public final class MQTTConnection: @unchecked Sendable {
    public let endpoint: MQTTEndpoint
    public let options: MQTTOptions

    /// The libmosquitto client. Created in `init`, destroyed in `deinit`, which
    /// cannot run while the network thread is alive (see `retained`).
    private let handle: OpaquePointer

    /// Guards `state`; signalled whenever connectedness or pending SUBACKs change.
    private let condition = Condition()
    private var state = State()

    /// Serialises connect attempts, joins of ended network threads and stop.
    private let supervisor: DispatchQueue
    private let supervisorKey = DispatchSpecificKey<Bool>()
    /// Signalled when the current network thread has finished; nil when no
    /// thread was started since the last join. Only used on `supervisor`.
    private var loopFinished: DispatchSemaphore?

    /// Held across `mosquitto_publish`/`mosquitto_subscribe` and the bookkeeping
    /// of the returned message id; the PUBACK and SUBACK callbacks pass through
    /// it first, so `onPublished(mid)` never runs before `publish` returned `mid`.
    private let requestLock = Condition()

    private enum Phase {
        case idle        // created, not started
        case connecting  // an attempt is under way (network thread may be running)
        case connected   // CONNACK received
        case waiting     // between attempts; a retry is scheduled
        case stopped     // stop() called; final
    }

    private struct State {
        var phase: Phase = .idle
        var connected = false
        /// Remembered subscriptions, in the order they were first made.
        var subscriptions: [(filter: String, qos: Int)] = []
        /// SUBACKs still expected on this connection, by message id.
        var pendingSubscribes: [Int32: String] = [:]
        /// Subscribe requests between taking their place and knowing their id.
        var subscribesStarting = 0
        /// QoS 1/2 messages handed to libmosquitto and not yet acknowledged.
        var unacknowledged: Set<Int32> = []
        var backoff = ReconnectBackoff(minimum: 1, maximum: 60)
        /// Bumped whenever a scheduled retry must be forgotten.
        var retryGeneration = 0
        var refusal: String?
        /// The last error libmosquitto logged during this attempt (TLS details).
        var lastLoggedError: String?
        var networkThread: pthread_t?
        /// +1 on `self` from `start()` to the end of `stop()`; the C user pointer
        /// is only dereferenced in between.
        var retained: Unmanaged<MQTTConnection>?
        var onMessage: (@Sendable (MQTTMessage) -> Void)?
        var onConnectionChange: (@Sendable (Bool, String) -> Void)?
        var onPublished: (@Sendable (Int32) -> Void)?
        var onPublishRejected: (@Sendable (Int32, String) -> Void)?
        var onSubscriptionRejected: (@Sendable (String) -> Void)?
    }

    /// The version of the libmosquitto the process loaded, e.g. "2.0.11".
    public static var libraryVersion: String { LibMosquitto.version }

    /// Creates a configured, unstarted connection. Throws for invalid options
    /// (bad will topic, unreadable TLS files, empty client id with a persistent
    /// session); never for an unreachable broker.
    public init(endpoint: MQTTEndpoint, options: MQTTOptions) throws(MQTTError) {
        // The user pointer is set below, once `self` exists; no callback can run
        // before `start()`.
        let mosq = try LibMosquitto.makeClient(endpoint: endpoint, options: options)
        self.handle = mosq
        self.endpoint = endpoint
        self.options = options
        self.state.backoff = ReconnectBackoff(minimum: options.reconnectMinSeconds,
                                              maximum: options.reconnectMaxSeconds)
        self.supervisor = DispatchQueue(label: "mqtt.supervisor.\(options.clientID)")
        supervisor.setSpecific(key: supervisorKey, value: true)
        // Unretained: the pointer is only used by callbacks, which run between
        // start() (which takes a +1, see `retained`) and the end of stop().
        mosquitto_user_data_set(mosq, Unmanaged.passUnretained(self).toOpaque())
        Self.installCallbacks(mosq)
    }

    deinit {
        // Not started, or stopped: no network thread exists any more.
        mosquitto_destroy(handle)
    }

    // MARK: Handlers

    /// Called for every received message, on the network thread. Set before `start()`.
    public var onMessage: (@Sendable (MQTTMessage) -> Void)? {
        get { locked { $0.onMessage } }
        set { locked { $0.onMessage = newValue } }
    }

    /// `(true, "connected")` after each successful CONNACK; `(false, reason)`
    /// after a connection is lost, after every failed attempt, and once after
    /// `stop()` if it was connected. On the network thread, or on the supervisor
    /// queue for attempts that fail before a network thread starts; never two
    /// at once.
    public var onConnectionChange: (@Sendable (_ connected: Bool, _ reason: String) -> Void)? {
        get { locked { $0.onConnectionChange } }
        set { locked { $0.onConnectionChange = newValue } }
    }

    /// The broker acknowledged a QoS 1 message (PUBACK; QoS 2: PUBCOMP), or a
    /// QoS 0 message left the socket. Never before `publish` returned the id.
    public var onPublished: (@Sendable (_ messageID: Int32) -> Void)? {
        get { locked { $0.onPublished } }
        set { locked { $0.onPublished = newValue } }
    }

    /// MQTT 5 only: the broker acknowledged a message with a failure reason code
    /// (e.g. not authorised). Called just before `onPublished` for that id.
    public var onPublishRejected: (@Sendable (_ messageID: Int32, _ reason: String) -> Void)? {
        get { locked { $0.onPublishRejected } }
        set { locked { $0.onPublishRejected = newValue } }
    }

    /// The broker refused a subscription (SUBACK 0x80 or an MQTT 5 failure code).
    public var onSubscriptionRejected: (@Sendable (_ filter: String) -> Void)? {
        get { locked { $0.onSubscriptionRejected } }
        set { locked { $0.onSubscriptionRejected = newValue } }
    }

    // MARK: State

    /// Whether a CONNACK was received and the connection has not ended since.
    public var isConnected: Bool { locked { $0.connected } }

    /// QoS 1/2 messages handed to `publish` and not yet acknowledged by the
    /// broker (queued while disconnected included).
    public var unacknowledgedCount: Int { locked { $0.unacknowledged.count } }

    /// Blocks until connected or `timeout` seconds passed; true if connected.
    public func waitUntilConnected(timeout: Double) -> Bool {
        waitFor(timeout: timeout) { $0.connected }
    }

    /// Blocks until connected and every subscription sent on this connection has
    /// its SUBACK, or `timeout` seconds passed; true if so.
    public func waitUntilSubscribed(timeout: Double) -> Bool {
        waitFor(timeout: timeout) { $0.connected && $0.subscribesStarting == 0 && $0.pendingSubscribes.isEmpty }
    }

    // MARK: Operations

    /// Remembers a subscription and sends it now if connected; it is sent again
    /// after every reconnect. Subscribing again to the same filter replaces its QoS.
    public func subscribe(_ filter: String, qos: Int) throws(MQTTError) {
        guard Topic.isValidFilter(filter) else {
            throw MQTTError(.invalidArgument, "invalid topic filter", context: "subscribe to '\(filter)'")
        }
        guard (0...2).contains(qos) else {
            throw MQTTError(.invalidArgument, "QoS must be 0, 1 or 2", context: "subscribe to '\(filter)'")
        }
        let sendNow: Bool = locked { state in
            if let i = state.subscriptions.firstIndex(where: { $0.filter == filter }) {
                state.subscriptions[i].qos = qos
            } else {
                state.subscriptions.append((filter, qos))
            }
            guard state.connected else { return false }
            state.subscribesStarting += 1
            return true
        }
        if sendNow { sendSubscriptions([(filter, qos)]) }
    }

    /// Connects in the background and returns at once; connection problems are
    /// reported through `onConnectionChange` and retried, never thrown.
    /// Throws only when already started or stopped.
    public func start() throws(MQTTError) {
        condition.lock()
        guard state.phase == .idle else {
            let stopped = state.phase == .stopped
            condition.unlock()
            throw MQTTError(.invalidArgument, stopped ? "the connection was stopped" : "already started",
                            context: "start \(endpoint)")
        }
        state.phase = .connecting
        // +1 on self: the network thread and the supervisor reach this object
        // through the C user pointer. Balanced by the release in finishStop().
        state.retained = Unmanaged.passRetained(self)
        condition.unlock()
        supervisor.async { self.attemptConnect() }
    }

    /// Publishes a message and returns its message id. See the type's
    /// documentation for what happens while disconnected.
    @discardableResult
    public func publish(topic: String, payload: [UInt8], qos: Int, retain: Bool) throws(MQTTError) -> Int32 {
        let context = "publish to '\(topic)'"
        guard Topic.isValidTopic(topic) else {
            throw MQTTError(.invalidArgument, "invalid topic name", context: context)
        }
        guard (0...2).contains(qos) else {
            throw MQTTError(.invalidArgument, "QoS must be 0, 1 or 2", context: context)
        }
        guard payload.count <= 268_435_455 else {
            throw MQTTError(.payloadTooLarge, "payload larger than MQTT allows", context: context)
        }
        if locked({ $0.phase == .stopped }) {
            throw MQTTError(.noConnection, "the connection was stopped", context: context)
        }
        requestLock.lock()
        defer { requestLock.unlock() }
        var mid: Int32 = 0
        let rc = payload.withUnsafeBytes { bytes in
            mosquitto_publish(handle, &mid, topic, Int32(payload.count), bytes.baseAddress, Int32(qos), retain)
        }
        // libmosquitto 2.0 queues a QoS 1/2 message before trying to send it and
        // keeps it when the send fails for want of a connection: it goes out
        // (with DUP set) after the next CONNACK. So NO_CONN is success here.
        if rc == Int32(MOSQ_ERR_SUCCESS.rawValue) || (qos > 0 && rc == Int32(MOSQ_ERR_NO_CONN.rawValue)) {
            if qos > 0 { _ = locked { $0.unacknowledged.insert(mid) } }
            return mid
        }
        try MQTTError.check(rc, context)
        return mid
    }

    /// Disconnects cleanly (a DISCONNECT packet, so the broker drops the will),
    /// joins the network thread and cancels reconnecting. Idempotent; safe from
    /// any thread. Called on the network thread (from a handler) it returns
    /// before the thread has ended. Queued unacknowledged messages are dropped.
    public func stop() {
        condition.lock()
        let previous = state.phase
        guard previous != .stopped else { condition.unlock(); return }
        state.phase = .stopped
        state.retryGeneration += 1
        let onNetworkThread = state.networkThread.map { pthread_equal($0, pthread_self()) != 0 } ?? false
        condition.unlock()
        guard previous != .idle else { return }  // never started: no thread, no retain

        if onNetworkThread {
            // Joining ourselves would deadlock: let the supervisor do it.
            _ = mosquitto_disconnect(handle)
            supervisor.async { self.finishStop() }
        } else if DispatchQueue.getSpecific(key: supervisorKey) == true {
            // From a handler called on the supervisor (a failed attempt).
            _ = mosquitto_disconnect(handle)
            finishStop()
        } else {
            supervisor.sync {
                _ = mosquitto_disconnect(handle)
                finishStop()
            }
        }
    }

    // MARK: Supervisor

    /// One connection attempt. On the supervisor queue.
    private func attemptConnect() {
        guard locked({ $0.phase == .connecting }) else { return }
        joinNetworkThread()
        locked {
            $0.refusal = nil
            $0.lastLoggedError = nil
        }
        let rc = mosquitto_connect_async(handle, endpoint.host, Int32(endpoint.port), Int32(options.keepAliveSeconds))
        if rc == Int32(MOSQ_ERR_SUCCESS.rawValue) {
            startNetworkThread()
            return
        }
        connectionEnded(reason: failureReason(rc), stopLibraryReconnect: false)
    }

    /// Starts the thread that runs libmosquitto's loop for this attempt. On the supervisor queue.
    private func startNetworkThread() {
        let finished = DispatchSemaphore(value: 0)
        loopFinished = finished
        // Linux keeps 15 characters of a thread's name.
        LoopThread(name: "mqtt-\(options.clientID.prefix(10))") { [self] in
            locked { $0.networkThread = pthread_self() }
            // What mosquitto_loop_start's thread runs. It returns after
            // mosquitto_disconnect (ours, or from the disconnect callback) or on
            // a fatal error, possibly without any callback.
            let rc = mosquitto_loop_forever(handle, 1000, 1)
            connectionEnded(reason: failureReason(rc), stopLibraryReconnect: false)
            locked { $0.networkThread = nil }
            finished.signal()
        }.detach()  // `finished` tells when it ends
    }

    /// Waits for the network thread to finish. On the supervisor queue, after
    /// `mosquitto_disconnect` was called (or the loop ended by itself).
    private func joinNetworkThread() {
        guard let finished = loopFinished else { return }
        if finished.wait(timeout: .now() + 2) == .timedOut {
            // A DISCONNECT cannot be sent while a TCP connect or TLS handshake is
            // still pending, and the loop keeps waiting for it: cut the socket
            // (shutdown only; libmosquitto still owns and closes the descriptor).
            let socket = mosquitto_socket(handle)
            if socket >= 0 { _ = shutdown(socket, Int32(SHUT_RDWR)) }
            finished.wait()
        }
        loopFinished = nil
    }

    /// Text for a failed attempt or an ended loop, with libmosquitto's last
    /// logged error (it names the TLS problem) when there is one.
    private func failureReason(_ rc: Int32) -> String {
        let (refusal, logged) = locked { ($0.refusal, $0.lastLoggedError) }
        if let refusal { return refusal }
        var reason = MQTTError.from(status: rc, context: "connection to \(endpoint)")?.description
            ?? "connection to \(endpoint) ended"
        if let logged { reason += " (\(logged))" }
        return reason
    }

    /// After a lost connection or a failed attempt: plan the next attempt.
    private func connectionEnded(reason: String, stopLibraryReconnect: Bool) {
        condition.lock()
        guard state.phase == .connecting || state.phase == .connected else {
            // stop() is under way (it reports), or this end was already handled.
            let stopped = state.phase == .stopped
            let wasConnected = state.connected
            state.connected = false
            condition.broadcast()
            let handler = state.onConnectionChange
            condition.unlock()
            if stopped && wasConnected { handler?(false, "stopped") }
            return
        }
        state.phase = .waiting
        state.connected = false
        state.pendingSubscribes.removeAll()
        condition.broadcast()
        let handler = state.onConnectionChange
        condition.unlock()

        if stopLibraryReconnect {
            // Sets libmosquitto's state to "disconnected", so that
            // mosquitto_loop_forever returns instead of reconnecting by itself
            // (without jitter); the socket is already closed, nothing is sent.
            _ = mosquitto_disconnect(handle)
        }
        handler?(false, reason)
        supervisor.async {
            self.joinNetworkThread()
            self.scheduleRetry()
        }
    }

    /// On the supervisor queue.
    private func scheduleRetry() {
        condition.lock()
        guard state.phase == .waiting else { condition.unlock(); return }
        let delay = state.backoff.nextDelay()
        state.retryGeneration += 1
        let generation = state.retryGeneration
        condition.unlock()
        supervisor.asyncAfter(deadline: .now() + delay) { [weak self] in
            guard let self else { return }
            let go: Bool = self.locked { state in
                guard state.phase == .waiting, state.retryGeneration == generation else { return false }
                state.phase = .connecting
                return true
            }
            if go { self.attemptConnect() }
        }
    }

    /// The end of stop(): the network thread is gone, release the +1.
    /// On the supervisor queue.
    private func finishStop() {
        joinNetworkThread()
        condition.lock()
        let wasConnected = state.connected
        state.connected = false
        state.pendingSubscribes.removeAll()
        state.unacknowledged.removeAll()
        condition.broadcast()
        let handler = state.onConnectionChange
        let retained = state.retained
        state.retained = nil
        condition.unlock()
        if wasConnected { handler?(false, "stopped") }
        retained?.release()  // balances passRetained in start()
    }

    // MARK: Callbacks (network thread)

    func handleConnect(_ rc: Int32) {
        condition.lock()
        guard rc == 0 else {
            let text = options.protocolVersion == .v5
                ? String(cString: mosquitto_reason_string(rc)) : String(cString: mosquitto_connack_string(rc))
            state.refusal = "connection refused: \(text)"
            condition.unlock()
            // libmosquitto follows a refused CONNACK with the disconnect callback,
            // which reports this reason.
            return
        }
        guard state.phase == .connecting else { condition.unlock(); return }
        state.phase = .connected
        state.connected = true
        state.backoff.reset()
        let subscriptions = state.subscriptions
        state.subscribesStarting += subscriptions.count
        condition.broadcast()
        let handler = state.onConnectionChange
        condition.unlock()
        if !subscriptions.isEmpty { sendSubscriptions(subscriptions) }
        handler?(true, "connected")
    }

    /// Errors only (the trampoline filters): they name TLS failures.
    func handleLoggedError(_ text: String) {
        locked { $0.lastLoggedError = text }
    }

    func handleDisconnect(_ rc: Int32) {
        let reason: String = locked { state in
            if let refusal = state.refusal { return refusal }
            if rc == 0 { return "disconnected" }
            if options.protocolVersion == .v5 && rc >= 0x80 {
                // An MQTT 5 DISCONNECT from the broker carries a reason code, not a MOSQ_ERR.
                return "disconnected by the broker: \(String(cString: mosquitto_reason_string(rc)))"
            }
            return MQTTError.from(status: rc, context: "connection to \(endpoint)")?.description ?? "disconnected"
        }
        connectionEnded(reason: reason, stopLibraryReconnect: true)
    }

    func handleMessage(_ message: MQTTMessage) {
        let handler = locked { $0.onMessage }
        handler?(message)
    }

    func handlePublished(mid: Int32, reasonCode: Int32) {
        requestLock.lock(); requestLock.unlock()  // let publish() record `mid` first
        let (published, rejected) = locked { state in
            state.unacknowledged.remove(mid)
            return (state.onPublished, state.onPublishRejected)
        }
        if reasonCode >= 0x80 {
            rejected?(mid, String(cString: mosquitto_reason_string(reasonCode)))
        }
        published?(mid)
    }

    func handleSubscribed(mid: Int32, grantedQoS: [Int32]) {
        requestLock.lock(); requestLock.unlock()  // let the subscriber record `mid` first
        let (filter, handler) = locked { state in
            let filter = state.pendingSubscribes.removeValue(forKey: mid)
            condition.broadcast()
            return (filter, state.onSubscriptionRejected)
        }
        if let filter, grantedQoS.contains(where: { $0 >= 0x80 }) {
            handler?(filter)
        }
    }

    // MARK: Helpers

    /// Sends SUBSCRIBE for each entry; the caller counted them in `subscribesStarting`.
    private func sendSubscriptions(_ list: [(filter: String, qos: Int)]) {
        for (filter, qos) in list {
            requestLock.lock()
            var mid: Int32 = 0
            let rc = mosquitto_subscribe(handle, &mid, filter, Int32(qos))
            locked { state in
                state.subscribesStarting -= 1
                // NO_CONN: the connection just ended; the next CONNACK resends it.
                if rc == Int32(MOSQ_ERR_SUCCESS.rawValue) { state.pendingSubscribes[mid] = filter }
                condition.broadcast()
            }
            requestLock.unlock()
        }
    }

    private func waitFor(timeout: Double, _ done: (State) -> Bool) -> Bool {
        let deadline = MonotonicInstant.now().adding(seconds: timeout)
        condition.lock()
        defer { condition.unlock() }
        while !done(state) {
            if !condition.wait(until: deadline) { return done(state) }
        }
        return true
    }

    private func locked<T>(_ body: (inout State) -> T) -> T {
        condition.lock()
        defer { condition.unlock() }
        return body(&state)
    }
}
