/// One broker of the site config (`brokers.internal`, `brokers.central`):
/// where it is and how each service logs in to it.
public struct SiteBrokerSettings: Sendable {
    public var host: String = "127.0.0.1"
    public var port: Int = 1883
    /// "5" or "3.1.1".
    public var protocolVersion: String = "5"
    public var keepAliveSeconds: Int = 30
    public var tls: SiteTLSSettings?
    /// By service: `proxy`, `config_sender`.
    public var clients: [String: SiteClientSettings] = [:]
    public init() {}
}
