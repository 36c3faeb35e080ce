/// The services' settings of a site config: brokers, the proxy's journal and
/// timers, the config sender's timers. The engine never sees them.
public struct ServiceSettings: Sendable {
    /// By name: `internal`, `central`. A broker not described gets the defaults.
    public var brokers: [String: SiteBrokerSettings] = [:]
    public var proxy = ProxySettings()
    public var configSender = ConfigSenderSettings()
    /// `log_level`: the least severe events both services log; nil: info, or
    /// the command line's `--log-level`, which overrides it.
    public var logLevel: String?
    /// The names `log_level` takes, least severe first.
    public static let logLevels = ["debug", "info", "warning", "error"]

    public init() {}
}
