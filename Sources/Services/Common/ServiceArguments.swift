import ArgumentParser
#if canImport(Glibc)
import Glibc
#endif
import RuleEngine
import SiteSettings

/// The command-line options every service shares, and its start-up: the one
/// load → check → compile path, whose diagnostics stop start-up.
public struct ServiceArguments: ParsableArguments {
    @Option(help: "A rule pack directory, a directory of packs (every pack under it), or a pack.yaml; repeat for several.")
    public var rules: [String] = ["rules"]

    @Option(help: "The site config file.")
    public var config: String = "config/config.yaml"

    @Option(name: .customLong("internal"), help: ArgumentHelp("The meters' broker, overriding the config.", valueName: "mqtt://HOST:PORT"))
    public var internalURL: String?

    @Option(name: .customLong("central"), help: ArgumentHelp("The central broker, overriding the config.", valueName: "mqtt://HOST:PORT"))
    public var centralURL: String?

    @Option(help: "debug, info, warning or error; overrides the site config's log_level (default: info).")
    public var logLevel: String?

    public init() {}

    public func validate() throws {
        if let logLevel, LogLevel(name: logLevel) == nil {
            throw ValidationError("unknown log level '\(logLevel)' (use debug, info, warning or error)")
        }
    }

    /// Builds the program and reads the settings, or prints every diagnostic to
    /// standard error and exits 1. Warnings (a deprecated key) are logged.
    public func start() throws -> (site: Site, options: ServiceOptions, log: Log) {
        let override = logLevel.flatMap(LogLevel.init(name:))
        let log = Log(level: override ?? .info)
        let site: Site
        do throws(DiagnosticReport) {
            site = try Site.load(rules: rules, config: config)
        } catch {
            Log(level: .error, fd: 2).write(raw: error.description)
            throw ExitCode(1)
        }
        let options = ServiceOptions(rulePaths: rules, config: config, internalURL: internalURL, centralURL: centralURL,
                                     logLevel: override)
        log.level = options.logLevel(for: site.settings)
        for d in site.warnings.diagnostics {
            log.warning("config_warning", ["diagnostic": d.headline, "hint": d.hint ?? ""])
        }
        return (site, options, log)
    }
}
