/// Everything about a connection except where the broker is.
public struct MQTTOptions: Sendable, Equatable {
    /// Client identifier. May be empty only with `cleanSession` (the broker or
    /// libmosquitto then picks one).
    public var clientID: String
    /// false: the broker keeps our subscriptions and queues QoS 1/2 messages
    /// while we are away (MQTT 5: clean start false plus `sessionExpirySeconds`).
    public var cleanSession: Bool
    public var protocolVersion: MQTTProtocolVersion
    /// Keepalive in seconds; 0 disables it, otherwise at least 5 (libmosquitto's floor).
    public var keepAliveSeconds: Int
    public var username: String?
    /// The password itself, already resolved from a file or the environment.
    public var password: String?
    /// Where `password` came from (`file '/etc/…'`), named with the user when
    /// a connection attempt fails; nil: nobody said.
    public var passwordSource: String?
    /// TLS files; TLS is used when the endpoint is `mqtts://` or this is set.
    public var tls: MQTTTLS?
    public var will: MQTTWill?
    /// First reconnect delay; it doubles per failed attempt up to the maximum,
    /// each delay with ±25 % jitter (never below the minimum or above the maximum).
    public var reconnectMinSeconds: Double
    public var reconnectMaxSeconds: Double
    /// Outgoing QoS 1/2 messages in flight at once; further ones wait in
    /// libmosquitto's queue. 0 = unlimited.
    public var maxInflight: Int
    /// MQTT 5 only, used when `cleanSession` is false: how long the broker keeps
    /// the session after we disconnect. The default (UInt32.max) never expires,
    /// like an MQTT 3.1.1 persistent session.
    public var sessionExpirySeconds: UInt32

    public init(clientID: String,
                cleanSession: Bool = true,
                protocolVersion: MQTTProtocolVersion = .v311,
                keepAliveSeconds: Int = 30,
                username: String? = nil,
                password: String? = nil,
                passwordSource: String? = nil,
                tls: MQTTTLS? = nil,
                will: MQTTWill? = nil,
                reconnectMinSeconds: Double = 1,
                reconnectMaxSeconds: Double = 60,
                maxInflight: Int = 100,
                sessionExpirySeconds: UInt32 = .max) {
        self.clientID = clientID
        self.cleanSession = cleanSession
        self.protocolVersion = protocolVersion
        self.keepAliveSeconds = keepAliveSeconds
        self.username = username
        self.password = password
        self.passwordSource = passwordSource
        self.tls = tls
        self.will = will
        self.reconnectMinSeconds = reconnectMinSeconds
        self.reconnectMaxSeconds = reconnectMaxSeconds
        self.maxInflight = maxInflight
        self.sessionExpirySeconds = sessionExpirySeconds
    }
}

extension MQTTOptions {
    /// Refuses options no connection can use; also initialises libmosquitto.
    static func validate(_ options: MQTTOptions, endpoint: MQTTEndpoint) throws(MQTTError) {
        LibMosquitto.initialised
        guard (1...65535).contains(endpoint.port) else {
            throw MQTTError(.invalidArgument, "port \(endpoint.port) is out of range", context: "connect to \(endpoint)")
        }
        guard options.keepAliveSeconds == 0 || (5...65535).contains(options.keepAliveSeconds) else {
            throw MQTTError(.invalidArgument, "keepalive must be 0 or 5...65535 seconds", context: "options")
        }
        guard options.reconnectMinSeconds > 0, options.reconnectMaxSeconds >= options.reconnectMinSeconds else {
            throw MQTTError(.invalidArgument, "reconnect delays must satisfy 0 < min <= max", context: "options")
        }
        guard (0...65535).contains(options.maxInflight) else {
            throw MQTTError(.invalidArgument, "maxInflight must be 0...65535", context: "options")
        }
        if options.clientID.isEmpty && !options.cleanSession {
            throw MQTTError(.invalidArgument, "a persistent session needs a client id", context: "options")
        }
    }
}

extension MQTTOptions: CustomStringConvertible, CustomReflectable {
    /// Everything but the password, so that options can be logged.
    public var description: String {
        "MQTTOptions(clientID: \(clientID), cleanSession: \(cleanSession), protocol: \(protocolVersion), "
            + "keepAlive: \(keepAliveSeconds) s, username: \(username ?? "none"), password: \(password == nil ? "none" : "<redacted>"), "
            + "tls: \(tls.map { "CA \($0.caFile ?? "system"), certificate \($0.certFile ?? "none")" } ?? "off"), "
            + "will: \(will?.topic ?? "none"), reconnect: \(reconnectMinSeconds)...\(reconnectMaxSeconds) s, "
            + "maxInflight: \(maxInflight))"
    }

    /// `dump` and debuggers show the password as redacted too.
    public var customMirror: Mirror {
        Mirror(self, children: [
            "clientID": clientID, "cleanSession": cleanSession, "protocolVersion": protocolVersion,
            "keepAliveSeconds": keepAliveSeconds, "username": username as Any,
            "password": (password == nil ? "none" : "<redacted>") as Any, "tls": tls as Any, "will": will as Any,
            "reconnectMinSeconds": reconnectMinSeconds, "reconnectMaxSeconds": reconnectMaxSeconds,
            "maxInflight": maxInflight, "sessionExpirySeconds": sessionExpirySeconds,
        ])
    }
}
