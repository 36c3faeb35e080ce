import RuleEngine

/// What every service's command line says: the rule pack, the site config,
/// broker overrides and the log level. Parsed by the executables
/// (ArgumentParser), used by the services.
public struct ServiceOptions: Sendable {
    /// The rule pack directory (or its `pack.yaml`).
    public var rules: String
    /// The site config file; nil: the defaults.
    public var config: String?
    /// `mqtt://HOST[:PORT]` or `mqtts://…` replacing the config's internal broker.
    public var internalURL: String?
    /// `mqtt://HOST[:PORT]` or `mqtts://…` replacing the config's central broker.
    public var centralURL: String?
    public var logLevel: LogLevel

    public init(rules: String, config: String?, internalURL: String? = nil, centralURL: String? = nil, logLevel: LogLevel = .info) {
        self.rules = rules
        self.config = config
        self.internalURL = internalURL
        self.centralURL = centralURL
        self.logLevel = logLevel
    }
}

extension Program {
    /// A service's state directory: `base`, or its `<instance>` subdirectory
    /// when the site names an instance, so instances never share state.
    public func stateDirectory(_ base: String) -> String {
        guard let instance else { return base }
        return (base.hasSuffix("/") ? base : base + "/") + instance
    }
}
