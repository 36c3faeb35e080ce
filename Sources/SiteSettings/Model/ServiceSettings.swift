/// The services' settings of a site config: brokers, the proxy's journal and
/// timers, the config sender's timers. The engine never sees them.
public struct ServiceSettings: Sendable {
    /// By name: `internal`, `central`. A broker not described gets the defaults.
    public var brokers: [String: BrokerConfig] = [:]
    public var proxy = ProxySettings()
    public var configSender = ConfigSenderSettings()

    public init() {}
}
