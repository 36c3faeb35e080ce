internal import CMosquitto
import Topics
#if canImport(Glibc)
import Glibc
#endif

/// One MQTT connection driven by an `EventLoop`, reconnecting by itself.
///
/// Not thread-safe: every method and every handler runs on the loop's thread
/// (post with `loop.execute` from elsewhere; debug builds trap otherwise, see
/// `EventLoop`). Many clients share one loop; no client has a thread of its own.
///
/// ## When packets leave
/// The client runs libmosquitto in threaded mode (`mosquitto_threaded_set`),
/// where making a packet only queues it; the loop writes queued packets at the
/// end of an iteration, after its hooks (see `EventLoop`). So a QoS 1 message
/// delivered to `onMessage` is acknowledged (PUBACK) only after the hooks of
/// that iteration returned — the proxy writes its journal in one.
///
/// ## Reconnecting
/// When a connection ends (or an attempt fails), the next attempt follows
/// after a `ReconnectBackoff` delay (1 s doubling to 60 s, ±25 % jitter); every
/// CONNACK re-sends the remembered subscriptions. A broker that accepts TCP
/// but never answers CONNECT is given up after the keepalive interval.
/// While reading is paused (`pauseReading`) a lost connection is not retried
/// until `resumeReading`: the broker keeps queueing for a persistent session.
///
/// ## Publishing while disconnected
/// QoS 1/2 messages are queued by libmosquitto (it returns `MOSQ_ERR_NO_CONN`
/// but keeps the message, 2.0.11) and sent after the next CONNACK; the id is
/// returned and `onPublished` follows the broker's PUBACK. QoS 0 throws
/// `.noConnection`.
///
/// `@unchecked Sendable`: a client is made and set up on one thread and then
/// used on its loop's thread only, which the debug builds check.
public final class MQTTClient: @unchecked Sendable {
    public let endpoint: MQTTEndpoint
    public let options: MQTTOptions
    public let loop: EventLoop

    /// `(true, "connected")` after each CONNACK; `(false, reason)` after a lost
    /// connection, each failed attempt, and once after `stop()` if connected.
    public var onConnectionChange: ((_ connected: Bool, _ reason: String) -> Void)?
    /// A received message. Its topic and payload are borrowed: valid only
    /// during the call (libmosquitto frees them afterwards).
    public var onMessage: ((MQTTBorrowedMessage) -> Void)?
    /// The broker acknowledged a QoS 1 message (PUBACK; QoS 2: PUBCOMP), or a
    /// QoS 0 message left the socket.
    public var onPublished: ((_ messageID: Int32) -> Void)?
    /// MQTT 5: the broker acknowledged a message with a failure reason code
    /// (≥ 0x80, e.g. 0x87 not authorized), named in `reason`. Called just
    /// before `onPublished` for that id.
    public var onPublishRejected: ((_ messageID: Int32, _ code: Int32, _ reason: String) -> Void)?
    /// The broker refused a subscription (SUBACK 0x80 or an MQTT 5 failure code).
    public var onSubscriptionRejected: ((_ filter: String) -> Void)?
    /// Every subscription sent on this connection has its SUBACK.
    public var onSubscriptionsSettled: (() -> Void)?

    /// The libmosquitto client; created in `init`, destroyed in `deinit`.
    private let handle: OpaquePointer

    private enum Phase { case idle, connecting, connected, waiting, paused, stopped }
    private var phase = Phase.idle
    /// The socket registered with the loop; -1 when there is none.
    private var socket: Int32 = -1
    private var readingPaused = false
    private var writesHeld = false
    /// `options`: MQTT 5 subscription options (`MQTT_SUB_OPT_…`), 0 with 3.1.1.
    private var subscriptions: [(filter: String, qos: Int, options: Int32)] = []
    private var pendingSubscribes: [Int32: String] = [:]
    private var unacknowledged = 0
    private var window: Int
    private var backoff: ReconnectBackoff
    private var retryTimer: LoopTimer?
    /// What the retry timer holds weakly instead of the client: it lives
    /// exactly as long as the client (nothing else references it), so a
    /// live token means a live client. A weak reference to the client itself
    /// would give it a side table for good, and from the first reconnect on
    /// every retain and release of it (several per message: its callbacks,
    /// the loop's writes) would take the runtime's slow path.
    private let liveness = Liveness()
    private final class Liveness {}
    private var refusal: String?
    private var lastLoggedError: String?
    /// No TLS: libmosquitto reads the socket packet by packet (see `read`).
    private let plainTCP: Bool
    /// Inside a handler called from libmosquitto (see `stop`).
    private var inCallback = false
    /// In the loop's list of clients to write this iteration (`EventLoop.markDirty`).
    var isMarkedDirty = false
    /// `publish(topicBytes:…)`'s NUL-terminated copy of the topic, reused.
    private var topicBuffer: [CChar] = []
    /// The latest received message's topic, as a `String` and as a C string
    /// (owned, NUL-terminated; freed in `deinit`): a stream repeats its topics,
    /// so the next one is compared with these bytes rather than made into a
    /// `String` again (`receivedTopic`).
    private var lastTopic = ""
    private var lastTopicCString: UnsafeMutablePointer<CChar> = {
        let empty = UnsafeMutablePointer<CChar>.allocate(capacity: 1)
        empty.initialize(to: 0)
        return empty
    }()

    /// Creates a configured, unstarted client. Throws for invalid options (bad
    /// will topic, unreadable TLS files, a persistent session without a client
    /// id); never for an unreachable broker.
    ///
    /// `dropSocketPair`: close the wake-up socket pair libmosquitto opens for
    /// its own `select()` loop, which this client never runs, so that the
    /// client holds one descriptor instead of three (fleets of thousands of
    /// clients in one process; see `LibMosquitto.closeWakeSocketPair`).
    /// `holdsSocketPair` says whether it is still there.
    public init(loop: EventLoop, endpoint: MQTTEndpoint, options: MQTTOptions, dropSocketPair: Bool = false) throws(MQTTError) {
        var dropped = false
        let mosq = try LibMosquitto.makeClient(endpoint: endpoint, options: options) { mosq in
            dropped = dropSocketPair && LibMosquitto.closeWakeSocketPair(mosq)
        }
        holdsSocketPair = !dropped
        plainTCP = !endpoint.tls && options.tls == nil
        self.handle = mosq
        self.loop = loop
        self.endpoint = endpoint
        self.options = options
        self.backoff = ReconnectBackoff(minimum: options.reconnectMinSeconds, maximum: options.reconnectMaxSeconds)
        self.window = options.maxInflight == 0 ? 65535 : options.maxInflight
        // Unretained: callbacks only run inside libmosquitto calls this object
        // makes, so `self` is alive whenever the pointer is used.
        mosquitto_user_data_set(mosq, Unmanaged.passUnretained(self).toOpaque())
        Self.installCallbacks(mosq)
    }

    deinit {
        mosquitto_destroy(handle)
        lastTopicCString.deallocate()
    }

    // MARK: State

    public var isConnected: Bool {
        loop.assertOnLoop("MQTTClient.isConnected")
        return phase == .connected
    }

    /// Whether libmosquitto's wake-up socket pair (2 descriptors) is still
    /// open; false after `dropSocketPair` succeeded. Any thread.
    public let holdsSocketPair: Bool

    /// Connected, and every subscription sent on this connection has its SUBACK.
    public var isSubscribed: Bool {
        loop.assertOnLoop("MQTTClient.isSubscribed")
        return phase == .connected && pendingSubscribes.isEmpty
    }

    /// How many QoS 1/2 messages libmosquitto sends before it waits for
    /// acknowledgements: the broker's Receive Maximum when its CONNACK had
    /// one (MQTT 5; Mosquitto sends its `max_inflight_messages`, 20 by
    /// default), else `options.maxInflight` (0: 65,535) — as libmosquitto
    /// takes it (2.0.11 `handle__connack`). Messages past it wait in
    /// libmosquitto's queue, which it scans whole at every publish.
    public var sendWindow: Int {
        loop.assertOnLoop("MQTTClient.sendWindow")
        return window
    }

    /// Work waits for this connection's acknowledgements (its send window is
    /// full): the loop's coalescing wait in this iteration ends as soon as
    /// the acknowledgements of three quarters of the messages in flight can
    /// be read (see `EventLoop`). Not all: the loop sends their successors
    /// while the broker still works on the last quarter, so the broker is
    /// not left idle; not one: the loop would wake for each acknowledgement.
    /// (Burst runs against half: fewer iterations, less CPU per message,
    /// more throughput; BENCHMARKS.md.)
    public func awaitAcknowledgements() {
        loop.assertOnLoop("MQTTClient.awaitAcknowledgements")
        // A PUBACK without a reason code or properties is 4 bytes (MQTT 5 and 3.1.1).
        if socket >= 0 { loop.awaitReadable(socket, bytes: 4 * max(1, min(unacknowledged, window) * 3 / 4)) }
    }

    /// QoS 1/2 messages handed to `publish` and not yet acknowledged.
    public var unacknowledgedCount: Int {
        loop.assertOnLoop("MQTTClient.unacknowledgedCount")
        return unacknowledged
    }

    // MARK: Operations

    /// Connects in the background; problems are reported through
    /// `onConnectionChange` and retried, never thrown. Once only.
    public func start() {
        loop.assertOnLoop("MQTTClient.start")
        guard phase == .idle else { return }
        loop.attach(self)
        phase = .connecting
        attemptConnect()
    }

    /// Sends DISCONNECT (so the broker drops the will), closes the socket and
    /// stops reconnecting. Messages libmosquitto still holds are dropped.
    ///
    /// Called from one of this client's handlers, it finishes once the
    /// handler has returned, in the same loop iteration: libmosquitto calls
    /// the handlers holding locks that writing the DISCONNECT takes again.
    /// No other message of the same read is delivered.
    public func stop() {
        loop.assertOnLoop("MQTTClient.stop")
        guard phase != .stopped else { return }
        let wasStarted = phase != .idle
        let wasConnected = phase == .connected
        phase = .stopped
        retryTimer?.cancel()
        retryTimer = nil
        if inCallback {
            readingPaused = true  // ends the read after this message (`handleMessage`)
            loop.execute { [self] in finishStop(wasStarted: wasStarted, wasConnected: wasConnected) }
        } else {
            finishStop(wasStarted: wasStarted, wasConnected: wasConnected)
        }
    }

    private func finishStop(wasStarted: Bool, wasConnected: Bool) {
        if socket >= 0 && !writesHeld {
            _ = mosquitto_disconnect(handle)
            // Writes the DISCONNECT; libmosquitto then closes the socket and
            // calls the disconnect handler (which sees `.stopped`).
            _ = mosquitto_loop_write(handle, 1)
        }
        if socket >= 0 { dropSocket() }
        unacknowledged = 0
        if wasStarted { loop.detach(self) }
        if wasConnected { onConnectionChange?(false, "stopped") }
    }

    /// Remembers a subscription and sends it now if connected; it is sent
    /// again after every reconnect. Subscribing again replaces the QoS.
    ///
    /// `retainAsPublished` (MQTT 5; ignored with 3.1.1): a message arrives
    /// with the retain flag its publisher set, not only when it comes from the
    /// broker's store on subscribing — so a receiver can tell every retained
    /// message, live or not.
    public func subscribe(_ filter: String, qos: Int, retainAsPublished: Bool = false) throws(MQTTError) {
        loop.assertOnLoop("MQTTClient.subscribe")
        guard Topic.isValidFilter(filter) else {
            throw MQTTError(.invalidArgument, "invalid topic filter", context: "subscribe to '\(filter)'")
        }
        guard (0...2).contains(qos) else {
            throw MQTTError(.invalidArgument, "QoS must be 0, 1 or 2", context: "subscribe to '\(filter)'")
        }
        let options = retainAsPublished && self.options.protocolVersion == .v5 ? Int32(MQTT_SUB_OPT_RETAIN_AS_PUBLISHED.rawValue) : 0
        if let i = subscriptions.firstIndex(where: { $0.filter == filter }) {
            subscriptions[i].qos = qos
            subscriptions[i].options = options
        } else {
            subscriptions.append((filter, qos, options))
        }
        if phase == .connected { send(subscriptions: [(filter, qos, options)]) }
    }

    /// Publishes a message; returns its id. See the type's documentation for
    /// what happens while disconnected.
    @discardableResult
    public func publish(topic: String, payload: UnsafeRawBufferPointer, qos: Int, retain: Bool) throws(MQTTError) -> Int32 {
        try topic.withCString { cTopic in
            Result { () throws(MQTTError) -> Int32 in try publish(cTopic: cTopic, payload: payload, qos: qos, retain: retain) }
        }.get()
    }

    /// `publish(topic:payload:qos:retain:)` with the topic as bytes (UTF-8, no NUL),
    /// e.g. borrowed from a journal record: no `String` is made for it; it is
    /// copied into a reused NUL-terminated buffer for libmosquitto, which checks it.
    @discardableResult
    public func publish(topicBytes: UnsafeRawBufferPointer, payload: UnsafeRawBufferPointer, qos: Int, retain: Bool) throws(MQTTError) -> Int32 {
        if topicBuffer.count <= topicBytes.count { topicBuffer = [CChar](repeating: 0, count: topicBytes.count + 1) }
        return try topicBuffer.withUnsafeMutableBufferPointer { buffer in
            if let source = topicBytes.baseAddress {
                UnsafeMutableRawPointer(buffer.baseAddress!).copyMemory(from: source, byteCount: topicBytes.count)
            }
            buffer[topicBytes.count] = 0
            let cTopic = UnsafePointer(buffer.baseAddress!)
            return Result { () throws(MQTTError) -> Int32 in try publish(cTopic: cTopic, payload: payload, qos: qos, retain: retain) }
        }.get()
    }

    private func publish(cTopic: UnsafePointer<CChar>, payload: UnsafeRawBufferPointer, qos: Int, retain: Bool) throws(MQTTError) -> Int32 {
        loop.assertOnLoop("MQTTClient.publish")
        guard phase != .stopped else {
            throw MQTTError(.noConnection, "the connection was stopped", context: "publish to '\(String(cString: cTopic))'")
        }
        guard payload.count <= 268_435_455 else {
            throw MQTTError(.payloadTooLarge, "payload larger than MQTT allows", context: "publish to '\(String(cString: cTopic))'")
        }
        var mid: Int32 = 0
        let rc = mosquitto_publish(handle, &mid, cTopic, Int32(payload.count), payload.baseAddress, Int32(qos), retain)
        // NO_CONN with QoS 1/2: queued, sent after the next CONNACK (see above).
        if rc == Int32(MOSQ_ERR_SUCCESS.rawValue) || (qos > 0 && rc == Int32(MOSQ_ERR_NO_CONN.rawValue)) {
            if qos > 0 { unacknowledged += 1 }
            if socket >= 0 { loop.markDirty(self) }
            return mid
        }
        try MQTTError.check(rc, "publish to '\(String(cString: cTopic))'")
        return mid
    }

    @discardableResult
    public func publish(topic: String, payload: [UInt8], qos: Int, retain: Bool) throws(MQTTError) -> Int32 {
        let result = payload.withUnsafeBytes { bytes in
            Result { () throws(MQTTError) -> Int32 in try publish(topic: topic, payload: bytes, qos: qos, retain: retain) }
        }
        return try result.get()
    }

    /// Back-pressure: stop reading from the broker (it keeps the rest). A
    /// connection lost meanwhile (libmosquitto gives up after a keepalive
    /// without reading the PINGRESP) is not retried until `resumeReading`.
    ///
    /// Called from `onMessage`, it takes effect after that message: no other
    /// message of the same read follows (see `handleMessage`), so what one
    /// read brings is bounded by one message once the handler pauses.
    public func pauseReading() {
        loop.assertOnLoop("MQTTClient.pauseReading")
        guard !readingPaused else { return }
        readingPaused = true
        updateInterest()
    }

    public func resumeReading() {
        loop.assertOnLoop("MQTTClient.resumeReading")
        guard readingPaused else { return }
        readingPaused = false
        if phase == .paused {
            phase = .connecting
            attemptConnect()
        } else {
            updateInterest()
        }
    }

    /// Nothing is written to this broker until `releaseWrites`: not even the
    /// PUBACK of a message already read (the proxy holds them while its
    /// journal cannot be written). Keepalive stops too, so a long hold ends
    /// the connection; the broker then sends the unacknowledged messages again.
    public func holdWrites() {
        loop.assertOnLoop("MQTTClient.holdWrites")
        writesHeld = true
    }

    public func releaseWrites() {
        loop.assertOnLoop("MQTTClient.releaseWrites")
        guard writesHeld else { return }
        writesHeld = false
        if socket >= 0 { loop.markDirty(self) }
    }

    // MARK: Loop

    /// The socket is ready (`EPOLLIN`/`EPOLLOUT`/errors).
    private func handleEvents(_ events: UInt32) {
        let failed = events & (EPOLLERR.rawValue | EPOLLHUP.rawValue) != 0
        if phase == .connecting {
            // TCP connect, TLS handshake and CONNACK: mosquitto_loop_read does
            // the handshake steps, loop_write sends CONNECT.
            read(limit: 1)
            if socket >= 0 { loop.markDirty(self) }
            return
        }
        if events & EPOLLIN.rawValue != 0 || failed { read(limit: readingPaused && !failed ? 0 : loop.readBatch) }
        if socket >= 0 && events & EPOLLOUT.rawValue != 0 { loop.markDirty(self) }
    }

    /// Reads up to `limit` packets, stopping when the socket has no more.
    ///
    /// A `mosquitto_loop_read` that finds the socket empty is not free: its
    /// queue locks, the packet state's lock and a `read(2)` that fails with
    /// EAGAIN, about 300 instructions. libmosquitto 2.0.11 reads one packet
    /// per call on a connection with nothing queued (the meters' side: every
    /// reading a call of its own), so asking it once more to learn that the
    /// socket is empty would double the calls. On plain TCP, libmosquitto
    /// reads exactly the bytes of the packet it is in, never ahead: when the
    /// socket holds no byte (`FIONREAD`, no lock, no cancellation point),
    /// the next call would find nothing, and the loop stops; epoll is
    /// level-triggered, so bytes that arrive meanwhile wake the next
    /// iteration. With TLS the socket's bytes are not the packets' (OpenSSL
    /// reads ahead), and the loop reads until EAGAIN.
    private func read(limit: Int) {
        guard limit > 0 else { return }
        var count = 0
        repeat {
            errno = 0
            let rc = mosquitto_loop_read(handle, 1)
            count += 1
            loop.noteRead()
            // A failed read already closed the socket and called the disconnect
            // handler (mosquitto__loop_rc_handle).
            guard rc == 0, socket >= 0 else { return }
            if errno == EAGAIN || readingPaused { break }
            if plainTCP && !socketHasBytes() { break }
        } while count < limit
        // PUBACKs, PINGRESP answers, resends; a read that queued nothing (QoS 0
        // messages, acknowledgements) leaves the client off this iteration's writes.
        if mosquitto_want_write(handle) { loop.markDirty(self) }
    }

    /// Whether the socket holds unread bytes; true when it cannot tell (the
    /// next `mosquitto_loop_read` finds out then).
    private func socketHasBytes() -> Bool {
        var bytes: Int32 = 0
        return ioctl(socket, UInt(FIONREAD), &bytes) != 0 || bytes > 0
    }

    /// Step 5 of an iteration: write what is queued, then watch for
    /// writability only while something is left.
    ///
    /// Once connected, a client marked after a read that queued nothing (a
    /// QoS 0 message needs no PUBACK) skips `mosquitto_loop_write`, whose
    /// locks and state checks cost a few hundred instructions even with
    /// nothing to send. While connecting it is always called: the TCP
    /// connection's and the TLS handshake's steps go on in it.
    func writePending() {
        guard socket >= 0, !writesHeld else { return }
        if phase != .connected || mosquitto_want_write(handle) {
            let rc = mosquitto_loop_write(handle, 1)
            guard rc == 0, socket >= 0 else { return }
        }
        updateInterest()
    }

    /// Once a second from the loop: keepalive (PINGREQ; a silent broker is given up).
    func housekeeping() {
        guard socket >= 0 else { return }
        _ = mosquitto_loop_misc(handle)
        if socket >= 0 && mosquitto_want_write(handle) { loop.markDirty(self) }
    }

    private func updateInterest() {
        guard socket >= 0 else { return }
        var events: UInt32 = readingPaused && phase == .connected ? 0 : EPOLLIN.rawValue
        if mosquitto_want_write(handle) { events |= EPOLLOUT.rawValue }
        loop.modify(socket, events: events)
    }

    private func attemptConnect() {
        guard phase == .connecting else { return }
        refusal = nil
        lastLoggedError = nil
        Self.setErrorLogging(handle, true)  // names TLS failures; off once connected (cost)
        let rc = mosquitto_connect_async(handle, endpoint.host, Int32(endpoint.port), Int32(options.keepAliveSeconds))
        let fd = mosquitto_socket(handle)
        if rc == Int32(MOSQ_ERR_SUCCESS.rawValue) && fd >= 0 {
            socket = fd
            // unowned(unsafe): the loop holds this client (`attach`) until
            // `finishStop` detaches it, after the socket was unregistered, so
            // the handler never outlives it; a checked reference would cost
            // a retain and a release per socket event.
            let registered = loop.register(fd, events: EPOLLIN.rawValue | EPOLLOUT.rawValue) { [unowned(unsafe) self] events in
                handleEvents(events)
            }
            if registered { return }
            dropSocket()
            connectionEnded(reason: "cannot watch the socket: \(String(cString: strerror(errno)))")
            return
        }
        connectionEnded(reason: failureReason(rc))
    }

    private func dropSocket() {
        let fd = socket
        socket = -1
        loop.unregister(fd)
        // libmosquitto owns the descriptor; shutting it down makes its next
        // call fail and close it, whatever state the connection was in.
        _ = Glibc.shutdown(fd, Int32(SHUT_RDWR))
    }

    private func connectionEnded(reason: String) {
        pendingSubscribes.removeAll()
        if phase == .stopped { return }  // stop() reports
        // A failed attempt says who tried: most refusals are an account's.
        let reason = phase == .connecting ? "\(reason) (\(credentials))" : reason
        if readingPaused {
            phase = .paused
        } else {
            phase = .waiting
            let delay = backoff.nextDelay()
            retryTimer = loop.schedule(after: delay) { [weak liveness, unowned(unsafe) self] in
                guard liveness != nil, self.phase == .waiting else { return }
                self.phase = .connecting
                self.attemptConnect()
            }
        }
        onConnectionChange?(false, reason)
    }

    private func failureReason(_ rc: Int32) -> String {
        if let refusal { return refusal }
        let error = MQTTError.from(status: rc, context: "connection to \(endpoint)")
        var reason = error?.description ?? "connection to \(endpoint) ended"
        if phase == .connecting, let error {
            // Before CONNACK, these mean the other end is not an MQTT broker
            // (a wrong port): libmosquitto reports an end of file in the middle
            // of a packet as MOSQ_ERR_ERRNO with errno 0 ("Success").
            switch error.code {
            case .system where error.message == String(cString: strerror(0)):
                reason = "connection to \(endpoint): closed by the other end in the middle of a packet, before any CONNACK (is it an MQTT broker's port?)"
            case .protocolError:
                reason = "connection to \(endpoint): the other end answered CONNECT with something that is not MQTT (is it an MQTT broker's port?)"
            case .connectionLost:
                reason = "connection to \(endpoint): closed by the other end before any CONNACK (an MQTT broker's port? TLS where it expects plain MQTT?)"
            default:
                break
            }
        }
        if let lastLoggedError { reason += " (\(lastLoggedError))" }
        return reason
    }

    /// `user 'proxy', password from file '/etc/…'`, or `no user, no password`.
    private var credentials: String {
        let user = options.username.map { "user '\($0)'" } ?? "no user"
        let password = options.password == nil ? "no password" : "password from \(options.passwordSource ?? "the caller")"
        return "\(user), \(password)"
    }

    private func send(subscriptions list: [(filter: String, qos: Int, options: Int32)]) {
        for (filter, qos, options) in list {
            var mid: Int32 = 0
            // NO_CONN: the connection just ended; the next CONNACK resends it.
            if mosquitto_subscribe_v5(handle, &mid, filter, Int32(qos), options, nil) == Int32(MOSQ_ERR_SUCCESS.rawValue) {
                pendingSubscribes[mid] = filter
            }
        }
        loop.markDirty(self)
    }

    // MARK: Callbacks (inside this client's libmosquitto calls, loop thread)

    func handleConnect(_ rc: Int32, receiveMaximum: Int?) {
        // libmosquitto keeps a Receive Maximum once it had one, like this.
        if let receiveMaximum { window = receiveMaximum }
        guard rc == 0 else {
            let text = options.protocolVersion == .v5
                ? String(cString: mosquitto_reason_string(rc)) : String(cString: mosquitto_connack_string(rc))
            // The disconnect handler follows and reports this.
            refusal = "connection to \(endpoint) refused by the broker: \(text)"
            return
        }
        guard phase == .connecting else { return }
        phase = .connected
        backoff.reset()
        Self.setErrorLogging(handle, false)
        updateInterest()
        if !subscriptions.isEmpty { send(subscriptions: subscriptions) }
        inCallback = true
        onConnectionChange?(true, "connected")
        inCallback = false
    }

    func handleDisconnect(_ rc: Int32) {
        // First, while errno still says why (MOSQ_ERR_ERRNO).
        let reason = disconnectReason(rc)
        if socket >= 0 {
            // libmosquitto closed it already, which removed it from epoll.
            loop.forget(socket)
            socket = -1
        }
        connectionEnded(reason: reason)
    }

    private func disconnectReason(_ rc: Int32) -> String {
        let reason: String
        if let refusal {
            reason = refusal
        } else if rc == 0 {
            reason = "disconnected"
        } else if options.protocolVersion == .v5 && rc >= 0x80 {
            reason = "disconnected by the broker: \(String(cString: mosquitto_reason_string(rc)))"
        } else {
            reason = failureReason(rc)
        }
        return reason
    }

    /// The topic of a received message as a `String`: the previous one's when
    /// the bytes are the same (one `strcmp` against the kept copy), made and
    /// kept otherwise.
    func receivedTopic(_ cTopic: UnsafePointer<CChar>?) -> String {
        guard let cTopic else { return "" }
        if strcmp(lastTopicCString, cTopic) == 0 { return lastTopic }
        lastTopic = String(cString: cTopic)
        let count = strlen(cTopic) + 1
        lastTopicCString.deallocate()
        lastTopicCString = UnsafeMutablePointer<CChar>.allocate(capacity: count)
        lastTopicCString.initialize(from: cTopic, count: count)
        return lastTopic
    }

    func handleMessage(_ message: MQTTBorrowedMessage) {
        loop.noteReceived()
        inCallback = true
        onMessage?(message)
        inCallback = false
        // The handler paused reading: end this `mosquitto_loop_read` after
        // this packet. In 2.0.11 it reads as many packets as its queues are
        // long (it replaces `max_packets` with `msgs_out.queue_len +
        // msgs_in.queue_len`, thousands with many messages unacknowledged)
        // and stops early only when `errno` is EAGAIN after a packet. Nothing
        // between this callback's return and that test sets `errno`
        // (`handle__publish` queued the PUBACK before the callback; then it
        // unlocks, frees and reads the clock), and the PUBACK of this
        // message is queued already: it is taken, nothing is lost.
        if readingPaused { errno = EAGAIN }
    }

    func handlePublished(mid: Int32, reasonCode: Int32) {
        loop.noteAcknowledged()
        if unacknowledged > 0 { unacknowledged -= 1 }
        inCallback = true
        if reasonCode >= 0x80 {
            onPublishRejected?(mid, reasonCode, String(cString: mosquitto_reason_string(reasonCode)))
        }
        onPublished?(mid)
        inCallback = false
    }

    func handleSubscribed(mid: Int32, grantedQoS: UnsafeBufferPointer<Int32>) {
        guard let filter = pendingSubscribes.removeValue(forKey: mid) else { return }
        inCallback = true
        if grantedQoS.contains(where: { $0 >= 0x80 }) { onSubscriptionRejected?(filter) }
        if pendingSubscribes.isEmpty { onSubscriptionsSettled?() }
        inCallback = false
    }

    func handleLoggedError(_ text: String) {
        lastLoggedError = text
    }
}

extension MQTTClient {
    /// Registers the C trampolines; each receives the user pointer set in init.
    /// The two per message (a message, a PUBACK) borrow the client with
    /// `_withUnsafeGuaranteedRef`: it is alive for the whole call (see `init`),
    /// and a retain and a release per message would only say so again.
    fileprivate static func installCallbacks(_ mosq: OpaquePointer) {
        mosquitto_connect_v5_callback_set(mosq) { _, obj, rc, _, properties in
            guard let obj else { return }
            var receiveMaximum: UInt16 = 0
            let found = mosquitto_property_read_int16(properties, Int32(MQTT_PROP_RECEIVE_MAXIMUM.rawValue), &receiveMaximum, false) != nil
            Unmanaged<MQTTClient>.fromOpaque(obj).takeUnretainedValue().handleConnect(rc, receiveMaximum: found ? Int(receiveMaximum) : nil)
        }
        mosquitto_disconnect_callback_set(mosq) { _, obj, rc in
            guard let obj else { return }
            Unmanaged<MQTTClient>.fromOpaque(obj).takeUnretainedValue().handleDisconnect(rc)
        }
        mosquitto_message_callback_set(mosq) { _, obj, message in
            guard let obj, let message else { return }
            let m = message.pointee
            let payload = UnsafeRawBufferPointer(start: m.payload, count: m.payload == nil ? 0 : Int(m.payloadlen))
            Unmanaged<MQTTClient>.fromOpaque(obj)._withUnsafeGuaranteedRef { client in
                client.handleMessage(MQTTBorrowedMessage(topic: client.receivedTopic(m.topic), payload: payload,
                                                         qos: Int(m.qos), retain: m.retain))
            }
        }
        mosquitto_publish_v5_callback_set(mosq) { _, obj, mid, reasonCode, _ in
            guard let obj else { return }
            Unmanaged<MQTTClient>.fromOpaque(obj)._withUnsafeGuaranteedRef { $0.handlePublished(mid: mid, reasonCode: reasonCode) }
        }
        mosquitto_subscribe_callback_set(mosq) { _, obj, mid, count, granted in
            guard let obj else { return }
            Unmanaged<MQTTClient>.fromOpaque(obj).takeUnretainedValue().handleSubscribed(
                mid: mid, grantedQoS: UnsafeBufferPointer(start: granted, count: granted == nil ? 0 : Int(count)))
        }
    }

    /// The log callback makes libmosquitto format a line for every packet, so
    /// it is installed only while connecting, where its errors name TLS
    /// failures.
    fileprivate static func setErrorLogging(_ mosq: OpaquePointer, _ on: Bool) {
        if on {
            mosquitto_log_callback_set(mosq) { _, obj, level, text in
                guard let obj, let text, level & Int32(MOSQ_LOG_ERR) != 0 else { return }
                Unmanaged<MQTTClient>.fromOpaque(obj).takeUnretainedValue().handleLoggedError(String(cString: text))
            }
        } else {
            mosquitto_log_callback_set(mosq, nil)
        }
    }
}
