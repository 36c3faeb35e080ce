import RuleEngine
import SiteSettings

/// What every service's command line says: the rule pack, the site config,
/// broker overrides and the log level. Parsed by the executables
/// (ArgumentParser), used by the services.
public struct ServiceOptions: Sendable {
    /// The rule pack directory (or its `pack.yaml`).
    public var rules: String { rulePaths.joined(separator: ",") }
    /// Every `--rules`: pack directories, directories of packs, or pack files.
    public var rulePaths: [String]
    /// The site config file; nil: the defaults.
    public var config: String?
    /// `mqtt://HOST[:PORT]` or `mqtts://…` replacing the config's internal broker.
    public var internalURL: String?
    /// `mqtt://HOST[:PORT]` or `mqtts://…` replacing the config's central broker.
    public var centralURL: String?
    /// `--log-level`: overrides the site config's `log_level`, also on reload.
    public var logLevel: LogLevel?

    public init(rulePaths: [String], config: String?, internalURL: String? = nil, centralURL: String? = nil, logLevel: LogLevel? = nil) {
        self.init(rules: "", config: config, internalURL: internalURL, centralURL: centralURL, logLevel: logLevel)
        self.rulePaths = rulePaths
    }

    public init(rules: String, config: String?, internalURL: String? = nil, centralURL: String? = nil, logLevel: LogLevel? = nil) {
        self.rulePaths = [rules]
        self.config = config
        self.internalURL = internalURL
        self.centralURL = centralURL
        self.logLevel = logLevel
    }
}

extension ServiceOptions {
    /// The level to log at: `--log-level`, else the site config's `log_level`, else info.
    public func logLevel(for settings: ServiceSettings) -> LogLevel {
        logLevel ?? settings.logLevel.flatMap(LogLevel.init(name:)) ?? .info
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

extension ProgramSet {
    /// As `Program.stateDirectory`: the packs share the site's instance.
    public func stateDirectory(_ base: String) -> String { first.stateDirectory(base) }
}
