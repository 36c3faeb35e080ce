import CMosquitto
#if canImport(Glibc)
import Glibc
#endif

/// The floor of libmosquitto itself: two clients driven by raw libmosquitto
/// calls on one epoll loop, as the proxy's `EventLoop` drives its two, with
/// nothing of the project's in between — no `MQTTClient`, no `String`, no
/// closure per message. Each message read from the internal client is
/// published from its callback, unchanged, at QoS 1 on the central client.
///
/// The clients are set up as the proxy's are (`LibMosquitto.configure`):
/// threaded mode (a packet made in a callback is only queued and leaves in
/// `mosquitto_loop_write`, once per iteration), MQTT 5, persistent sessions
/// with a session expiry, keepalive 30 s, no in-flight limit of
/// libmosquitto's own on the central side, the wake-up socket pair kept.
/// There is no reconnection: a lost connection ends the run with status 1.
/// One thread besides the signal waiter; loop thread only.
final class RawForwarder {
    let options: ForwardOptions
    private let inbound: OpaquePointer
    private let outbound: OpaquePointer
    private let epoll: Int32
    /// The signal waiter writes a byte here (`ForwardSignals`).
    private let stopFD: Int32
    /// `options.prefix` followed by the incoming topic, NUL-terminated; reused.
    private var topic: [CChar]
    private var subscribed = false
    /// Whether each socket is watched for writability (epoll_ctl only on a change).
    private var inboundWatchesOut = true, outboundWatchesOut = true
    private var failed: String?
    /// Disconnecting on purpose: the disconnect callbacks are no failure.
    private var stopping = false
    private(set) var forwarded = 0
    private(set) var refused = 0

    init(options: ForwardOptions, stopFD: Int32) throws(ForwardError) {
        self.options = options
        self.stopFD = stopFD
        topic = Array(options.prefix.utf8CString.dropLast()) + [CChar](repeating: 0, count: 65_536)
        _ = mosquitto_lib_init()
        inbound = try Self.client(id: options.clientID + "-in", maxInflight: nil)
        outbound = try Self.client(id: options.clientID + "-out", maxInflight: 65_535)
        epoll = epoll_create1(Int32(EPOLL_CLOEXEC))
        guard epoll >= 0 else { throw ForwardError("epoll_create1: \(String(cString: strerror(errno)))") }
        let context = Unmanaged.passUnretained(self).toOpaque()
        mosquitto_user_data_set(inbound, context)
        mosquitto_user_data_set(outbound, context)
        mosquitto_message_callback_set(inbound) { _, obj, message in
            guard let obj, let message else { return }
            Unmanaged<RawForwarder>.fromOpaque(obj).takeUnretainedValue().forward(message)
        }
        mosquitto_subscribe_callback_set(inbound) { _, obj, _, count, granted in
            guard let obj else { return }
            let forwarder = Unmanaged<RawForwarder>.fromOpaque(obj).takeUnretainedValue()
            if count < 1 || granted == nil || granted![0] >= 0x80 { forwarder.failed = "the internal broker refused the subscription" }
            forwarder.subscribed = true
        }
        mosquitto_publish_v5_callback_set(outbound) { _, obj, _, reasonCode, _ in
            guard let obj, reasonCode >= 0x80 else { return }
            Unmanaged<RawForwarder>.fromOpaque(obj).takeUnretainedValue().refused += 1
        }
        mosquitto_disconnect_callback_set(inbound) { _, obj, rc in
            guard let obj else { return }
            Unmanaged<RawForwarder>.fromOpaque(obj).takeUnretainedValue().lost("internal", rc)
        }
        mosquitto_disconnect_callback_set(outbound) { _, obj, rc in
            guard let obj else { return }
            Unmanaged<RawForwarder>.fromOpaque(obj).takeUnretainedValue().lost("central", rc)
        }
    }

    deinit {
        mosquitto_destroy(inbound)
        mosquitto_destroy(outbound)
        close(epoll)
    }

    /// A client with the proxy's options (see the type's documentation).
    private static func client(id: String, maxInflight: Int32?) throws(ForwardError) -> OpaquePointer {
        guard let mosq = mosquitto_new(id, false, nil) else { throw ForwardError("mosquitto_new: \(String(cString: strerror(errno)))") }
        try check(mosquitto_threaded_set(mosq, true), "threaded mode")
        try check(mosquitto_int_option(mosq, MOSQ_OPT_PROTOCOL_VERSION, MQTT_PROTOCOL_V5), "protocol version")
        if let maxInflight { try check(mosquitto_int_option(mosq, MOSQ_OPT_SEND_MAXIMUM, maxInflight), "max inflight") }
        return mosq
    }

    private static func check(_ rc: Int32, _ what: String) throws(ForwardError) {
        guard rc == Int32(MOSQ_ERR_SUCCESS.rawValue) else { throw ForwardError("\(what): \(String(cString: mosquitto_strerror(rc)))") }
    }

    /// Connects both clients (a blocking TCP connect each, as the session
    /// expiry property can only be given to the blocking call in 2.0.11),
    /// subscribes, and runs until the stop descriptor is written or a
    /// connection ends. Returns the exit status.
    func run() throws(ForwardError) -> Int32 {
        try connect(outbound, options.centralBroker)
        try connect(inbound, options.internalBroker)
        var mid: Int32 = 0
        try Self.check(mosquitto_subscribe_v5(inbound, &mid, options.filter, Int32(options.subscribeQoS), 0, nil), "subscribe")
        try watch(stopFD, events: EPOLLIN.rawValue)
        try watch(mosquitto_socket(inbound), events: EPOLLIN.rawValue | EPOLLOUT.rawValue)
        try watch(mosquitto_socket(outbound), events: EPOLLIN.rawValue | EPOLLOUT.rawValue)
        var announced = false
        var lastMisc = time(nil)
        var events = [epoll_event](repeating: epoll_event(), count: 8)
        while failed == nil {
            let count = events.withUnsafeMutableBufferPointer { epoll_wait(epoll, $0.baseAddress, Int32($0.count), 1000) }
            var stop = false
            for i in 0..<max(0, Int(count)) {
                let fd = Int32(truncatingIfNeeded: events[i].data.fd)
                if fd == stopFD { stop = true; continue }
                guard events[i].events & (EPOLLIN.rawValue | EPOLLERR.rawValue | EPOLLHUP.rawValue) != 0 else { continue }
                read(fd == mosquitto_socket(inbound) ? inbound : outbound)
            }
            if stop { break }
            let now = time(nil)
            if now != lastMisc {
                lastMisc = now
                _ = mosquitto_loop_misc(inbound)
                _ = mosquitto_loop_misc(outbound)
            }
            // Step 5 of the proxy's iteration: write what the callbacks queued.
            write(outbound, watchingOut: &outboundWatchesOut)
            write(inbound, watchingOut: &inboundWatchesOut)
            if subscribed && !announced {
                announced = true
                emit("mqtt-forward: msg=forwarding transport=raw filter=\(options.filter) prefix=\(options.prefix)")
            }
        }
        stopping = true
        _ = mosquitto_disconnect(inbound)
        _ = mosquitto_disconnect(outbound)
        _ = mosquitto_loop_write(inbound, 1)
        _ = mosquitto_loop_write(outbound, 1)
        if let failed {
            emit("mqtt-forward: msg=failed error=\"\(failed)\" forwarded=\(forwarded)")
            return 1
        }
        emit("mqtt-forward: msg=stopped forwarded=\(forwarded) refused=\(refused)")
        return 0
    }

    private func connect(_ mosq: OpaquePointer, _ endpoint: ForwardOptions.Endpoint) throws(ForwardError) {
        var properties: OpaquePointer? = nil
        defer { mosquitto_property_free_all(&properties) }
        try Self.check(mosquitto_property_add_int32(&properties, Int32(MQTT_PROP_SESSION_EXPIRY_INTERVAL.rawValue), UInt32.max),
                       "session expiry property")
        try Self.check(mosquitto_connect_bind_v5(mosq, endpoint.host, Int32(endpoint.port), 30, nil, properties),
                       "connect to \(endpoint.host):\(endpoint.port)")
    }

    private func watch(_ fd: Int32, events: UInt32) throws(ForwardError) {
        var event = epoll_event(events: events, data: epoll_data_t(fd: fd))
        guard epoll_ctl(epoll, EPOLL_CTL_ADD, fd, &event) == 0 else {
            throw ForwardError("epoll_ctl: \(String(cString: strerror(errno)))")
        }
    }

    /// Reads up to 64 packets, as `MQTTClient` does (`EventLoop.readBatch`).
    private func read(_ mosq: OpaquePointer) {
        var count = 0
        repeat {
            errno = 0
            guard mosquitto_loop_read(mosq, 1) == 0 else { return }
            count += 1
        } while errno != EAGAIN && count < 64
    }

    /// Writes what is queued; watches for writability only while something is left.
    private func write(_ mosq: OpaquePointer, watchingOut: inout Bool) {
        let fd = mosquitto_socket(mosq)
        guard fd >= 0 else { return }
        if mosquitto_want_write(mosq) { _ = mosquitto_loop_write(mosq, 1) }
        let wantsOut = mosquitto_want_write(mosq)
        guard wantsOut != watchingOut else { return }
        watchingOut = wantsOut
        var event = epoll_event(events: EPOLLIN.rawValue | (wantsOut ? EPOLLOUT.rawValue : 0), data: epoll_data_t(fd: fd))
        _ = epoll_ctl(epoll, EPOLL_CTL_MOD, fd, &event)
    }

    /// The message callback: the topic behind the prefix, the payload as it
    /// came, published at QoS 1 (queued: threaded mode).
    private func forward(_ message: UnsafePointer<mosquitto_message>) {
        let m = message.pointee
        guard let source = m.topic else { return }
        let length = strlen(source)
        let prefix = options.prefix.utf8.count
        guard prefix + length < topic.count else { return }
        topic.withUnsafeMutableBufferPointer { buffer in
            let start = buffer.baseAddress!
            (start + prefix).update(from: source, count: length)
            start[prefix + length] = 0
            if mosquitto_publish(outbound, nil, start, m.payloadlen, m.payload, 1, false) == Int32(MOSQ_ERR_SUCCESS.rawValue) {
                forwarded += 1
            }
        }
    }

    private func lost(_ broker: String, _ rc: Int32) {
        if failed == nil && !stopping { failed = "the \(broker) connection ended: \(String(cString: mosquitto_strerror(rc)))" }
    }
}
