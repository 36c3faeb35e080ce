internal import CMosquitto
import Topics
#if canImport(Glibc)
import Glibc
#endif

extension LibMosquitto {
    /// A new client for `MQTTClient` with `options` applied;
    /// `prepare` sees it between `mosquitto_new` and the options. Destroyed
    /// again when an option is refused.
    static func makeClient(endpoint: MQTTEndpoint, options: MQTTOptions,
                           prepare: (OpaquePointer) -> Void = { _ in }) throws(MQTTError) -> OpaquePointer {
        try MQTTOptions.validate(options, endpoint: endpoint)
        let id: String? = options.clientID.isEmpty ? nil : options.clientID
        guard let mosq = mosquitto_new(id, options.cleanSession, nil) else {
            throw MQTTError(errno == ENOMEM ? .outOfMemory : .invalidArgument,
                            String(cString: strerror(errno)), context: "mosquitto_new")
        }
        prepare(mosq)
        do {
            try configure(mosq, endpoint: endpoint, options: options)
        } catch {
            mosquitto_destroy(mosq)
            throw error
        }
        return mosq
    }

    /// Applies `options` to a fresh client.
    /// Throws for the first option libmosquitto refuses; the caller destroys
    /// the client then.
    static func configure(_ mosq: OpaquePointer, endpoint: MQTTEndpoint, options: MQTTOptions) throws(MQTTError) {
        // Threaded mode: making a packet only queues it (packet__queue, 2.0.11);
        // it leaves in mosquitto_loop_write. MQTTClient relies on that to write
        // a PUBACK only after its loop's hooks (the proxy's journal) ran.
        try MQTTError.check(mosquitto_threaded_set(mosq, true), "threaded mode")
        let version = options.protocolVersion == .v5 ? MQTT_PROTOCOL_V5 : MQTT_PROTOCOL_V311
        try MQTTError.check(mosquitto_int_option(mosq, MOSQ_OPT_PROTOCOL_VERSION, version), "protocol version")
        // SEND_MAXIMUM is the in-flight window for outgoing QoS 1/2 (0 here = unlimited).
        let inflight = options.maxInflight == 0 ? 65535 : Int32(options.maxInflight)
        try MQTTError.check(mosquitto_int_option(mosq, MOSQ_OPT_SEND_MAXIMUM, inflight), "max inflight")

        if options.username != nil || options.password != nil {
            if options.username == nil {
                throw MQTTError(.invalidArgument, "a password needs a username", context: "credentials")
            }
            try MQTTError.check(mosquitto_username_pw_set(mosq, options.username, options.password), "credentials")
        }

        if let will = options.will {
            let context = "last will on '\(will.topic)'"
            guard Topic.isValidTopic(will.topic) else {
                throw MQTTError(.invalidArgument, "invalid topic name", context: context)
            }
            guard (0...2).contains(will.qos) else {
                throw MQTTError(.invalidArgument, "QoS must be 0, 1 or 2", context: context)
            }
            let rc = will.payload.withUnsafeBytes {
                mosquitto_will_set(mosq, will.topic, Int32(will.payload.count), $0.baseAddress, Int32(will.qos), will.retain)
            }
            try MQTTError.check(rc, context)
        }

        if endpoint.tls || options.tls != nil {
            let tls = options.tls ?? MQTTTLS()
            if let ca = tls.caFile {
                // Also checks that each file is readable (MOSQ_ERR_INVAL otherwise).
                let rc = mosquitto_tls_set(mosq, ca, nil, tls.certFile, tls.keyFile, nil)
                try MQTTError.check(rc, "TLS files (CA \(ca), certificate \(tls.certFile ?? "none"), key \(tls.keyFile ?? "none"))")
            } else if tls.certFile != nil || tls.keyFile != nil {
                throw MQTTError(.invalidArgument, "a client certificate needs a CA file", context: "TLS")
            } else {
                try MQTTError.check(mosquitto_int_option(mosq, MOSQ_OPT_TLS_USE_OS_CERTS, 1), "TLS with the system CAs")
                // libmosquitto 2.0.11 refuses every *re*connect that has only
                // TLS_USE_OS_CERTS ("MOSQ_OPT_SSL_CTX_WITH_DEFAULTS used without
                // specifying cafile, capath or psk"). Naming the system CA folder
                // as well satisfies that check; the OpenSSL default is the same.
                let folder = getenv("SSL_CERT_DIR").map { String(cString: $0) } ?? "/etc/ssl/certs"
                var info = stat()
                if stat(folder, &info) == 0 && (info.st_mode & S_IFMT) == S_IFDIR {
                    try MQTTError.check(mosquitto_tls_set(mosq, nil, folder, nil, nil, nil), "TLS with the system CAs in \(folder)")
                }
            }
        }

        if options.protocolVersion == .v5 && !options.cleanSession {
            try storeSessionExpiry(mosq, seconds: options.sessionExpirySeconds, endpoint: endpoint)
        }
    }

    /// MQTT 5 drops a session when the connection closes unless CONNECT carries a
    /// Session Expiry Interval. libmosquitto 2.0 sends CONNECT properties only if
    /// they were given to the *blocking* `mosquitto_connect_bind_v5`, which stores
    /// a copy in the client and reuses it for every later (async) connect and
    /// reconnect. It stores that copy before it validates host and port, so a
    /// call with port -1 stores the properties and returns MOSQ_ERR_INVAL without
    /// touching the network. The persistent-session test for MQTT 5 guards this.
    private static func storeSessionExpiry(_ mosq: OpaquePointer, seconds: UInt32, endpoint: MQTTEndpoint) throws(MQTTError) {
        var properties: OpaquePointer? = nil
        defer { mosquitto_property_free_all(&properties) }  // connect_bind_v5 copied them
        try MQTTError.check(
            mosquitto_property_add_int32(&properties, Int32(MQTT_PROP_SESSION_EXPIRY_INTERVAL.rawValue), seconds),
            "session expiry property")
        let rc = mosquitto_connect_bind_v5(mosq, endpoint.host, -1, 60, nil, properties)
        guard rc == Int32(MOSQ_ERR_INVAL.rawValue) else {
            try MQTTError.check(rc, "session expiry property")
            throw MQTTError(.other(rc), "unexpected result while storing CONNECT properties", context: "session expiry")
        }
    }
}
