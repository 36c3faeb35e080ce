internal import CMosquitto
#if canImport(Glibc)
import Glibc
#endif

extension MQTTConnection {
    /// Registers the C trampolines. Each receives the user pointer set in init
    /// and runs on the network thread while `start()`'s retain keeps `self` alive.
    static func installCallbacks(_ mosq: OpaquePointer) {
        mosquitto_connect_callback_set(mosq) { _, obj, rc in
            guard let obj else { return }
            Unmanaged<MQTTConnection>.fromOpaque(obj).takeUnretainedValue().handleConnect(rc)
        }
        mosquitto_disconnect_callback_set(mosq) { _, obj, rc in
            guard let obj else { return }
            Unmanaged<MQTTConnection>.fromOpaque(obj).takeUnretainedValue().handleDisconnect(rc)
        }
        mosquitto_message_callback_set(mosq) { _, obj, message in
            guard let obj, let message else { return }
            // libmosquitto frees the message after we return: copy topic and payload.
            let m = message.pointee
            let topic = m.topic.map { String(cString: $0) } ?? ""
            let payload: [UInt8] = m.payload.map {
                Array(UnsafeRawBufferPointer(start: $0, count: Int(m.payloadlen)))
            } ?? []
            let copy = MQTTMessage(topic: topic, payload: payload, qos: Int(m.qos), retain: m.retain)
            Unmanaged<MQTTConnection>.fromOpaque(obj).takeUnretainedValue().handleMessage(copy)
        }
        mosquitto_publish_v5_callback_set(mosq) { _, obj, mid, reasonCode, _ in
            guard let obj else { return }
            Unmanaged<MQTTConnection>.fromOpaque(obj).takeUnretainedValue().handlePublished(mid: mid, reasonCode: reasonCode)
        }
        mosquitto_log_callback_set(mosq) { _, obj, level, text in
            // Called for every packet at debug level: filter before copying.
            guard let obj, let text, level & Int32(MOSQ_LOG_ERR) != 0 else { return }
            Unmanaged<MQTTConnection>.fromOpaque(obj).takeUnretainedValue().handleLoggedError(String(cString: text))
        }
        mosquitto_subscribe_callback_set(mosq) { _, obj, mid, count, granted in
            guard let obj else { return }
            let qos = granted.map { Array(UnsafeBufferPointer(start: $0, count: Int(count))) } ?? []
            Unmanaged<MQTTConnection>.fromOpaque(obj).takeUnretainedValue().handleSubscribed(mid: mid, grantedQoS: qos)
        }
    }
}
