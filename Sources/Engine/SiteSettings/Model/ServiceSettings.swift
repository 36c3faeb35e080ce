/// The services' settings of a site config: brokers, the proxy's journal and
/// timers, the config sender's whole section. The engine never sees them;
/// what it needs of the file is its `SiteConfig`. A reload compares two of
/// them with `ReloadPolicy`.
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
