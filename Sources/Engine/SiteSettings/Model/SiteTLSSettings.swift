/// The files of a broker's TLS (`brokers.<name>.tls`); paths as written.
public struct SiteTLSSettings: Sendable {
    public var caFile: String?
    public var certFile: String?
    public var keyFile: String?
}
