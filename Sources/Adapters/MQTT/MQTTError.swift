internal import CMosquitto
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// An error from an MQTT operation: a typed code, libmosquitto's own text and
/// what we were doing when it happened.
public struct MQTTError: Error, Sendable, Equatable, CustomStringConvertible {
    /// What went wrong, independent of libmosquitto's numbering.
    public enum Code: Sendable, Equatable {
        /// Not connected: nothing was sent (see `MQTTClient` for QoS 1 and 2).
        case noConnection
        /// A bad argument: topic, QoS, option, URL.
        case invalidArgument
        case connectionRefused
        case connectionLost
        case protocolError
        case tls
        case authentication
        case notAuthorized
        case payloadTooLarge
        case notSupported
        case outOfMemory
        case keepaliveTimeout
        /// Host name lookup failed.
        case lookup
        case malformedUTF8
        /// An operating-system error; the message carries `strerror(errno)`.
        case system
        /// A libmosquitto status code this wrapper does not name.
        case other(Int32)
    }

    public var code: Code
    /// libmosquitto's numeric status (0 for errors raised by this wrapper).
    public var status: Int32
    /// Human text: libmosquitto's `mosquitto_strerror`, or this wrapper's own.
    public var message: String
    /// What the wrapper was doing ("publish to 'a/b'").
    public var context: String

    public init(_ code: Code, _ message: String, context: String = "", status: Int32 = 0) {
        self.code = code
        self.status = status
        self.message = message
        self.context = context
    }

    public var description: String {
        context.isEmpty ? message : "\(context): \(message)"
    }

    /// Not connected to the broker.
    public static let noConnection = MQTTError(.noConnection, "the client is not connected")
}

extension MQTTError {
    /// The one mapping from a libmosquitto status code to a typed error.
    ///
    /// Returns nil for `MOSQ_ERR_SUCCESS`. `errno` is read at once, so call this
    /// directly after the C function that failed.
    static func from(status rc: Int32, context: String) -> MQTTError? {
        if rc == Int32(MOSQ_ERR_SUCCESS.rawValue) { return nil }
        let savedErrno = errno
        let code: Code
        switch mosq_err_t(rawValue: rc) {
        case MOSQ_ERR_NO_CONN: code = .noConnection
        case MOSQ_ERR_INVAL: code = .invalidArgument
        case MOSQ_ERR_CONN_REFUSED: code = .connectionRefused
        case MOSQ_ERR_CONN_LOST: code = .connectionLost
        case MOSQ_ERR_PROTOCOL, MOSQ_ERR_MALFORMED_PACKET, MOSQ_ERR_DUPLICATE_PROPERTY:
            code = .protocolError
        case MOSQ_ERR_TLS, MOSQ_ERR_TLS_HANDSHAKE, MOSQ_ERR_OCSP: code = .tls
        case MOSQ_ERR_AUTH: code = .authentication
        case MOSQ_ERR_ACL_DENIED: code = .notAuthorized
        case MOSQ_ERR_PAYLOAD_SIZE, MOSQ_ERR_OVERSIZE_PACKET: code = .payloadTooLarge
        case MOSQ_ERR_NOT_SUPPORTED, MOSQ_ERR_QOS_NOT_SUPPORTED, MOSQ_ERR_RETAIN_NOT_SUPPORTED:
            code = .notSupported
        case MOSQ_ERR_NOMEM: code = .outOfMemory
        case MOSQ_ERR_KEEPALIVE: code = .keepaliveTimeout
        case MOSQ_ERR_EAI, MOSQ_ERR_LOOKUP: code = .lookup
        case MOSQ_ERR_MALFORMED_UTF8: code = .malformedUTF8
        case MOSQ_ERR_ERRNO: code = .system
        default: code = .other(rc)
        }
        var message = String(cString: mosquitto_strerror(rc))
        if code == .system {
            // mosquitto_strerror says only "Unknown error." style text for ERRNO.
            message = String(cString: strerror(savedErrno))
        }
        return MQTTError(code, message, context: context, status: rc)
    }

    /// An operating-system call failed: `strerror(errno)`, read at once.
    static func system(_ call: String) -> MQTTError {
        MQTTError(.system, String(cString: strerror(errno)), context: call)
    }

    /// Throws the mapped error unless `rc` is `MOSQ_ERR_SUCCESS`.
    static func check(_ rc: Int32, _ context: @autoclosure () -> String) throws(MQTTError) {
        if rc == 0 { return }
        if let error = from(status: rc, context: context()) { throw error }
    }
}
