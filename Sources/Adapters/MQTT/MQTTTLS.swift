/// TLS files. With no CA file the operating system's trust store is used.
public struct MQTTTLS: Sendable, Equatable {
    /// PEM file of the certificate authorities that may sign the broker's certificate.
    public var caFile: String?
    /// PEM client certificate, for brokers that require one (needs `keyFile`).
    public var certFile: String?
    /// PEM private key of `certFile` (unencrypted).
    public var keyFile: String?

    public init(caFile: String? = nil, certFile: String? = nil, keyFile: String? = nil) {
        self.caFile = caFile
        self.certFile = certFile
        self.keyFile = keyFile
    }
}
