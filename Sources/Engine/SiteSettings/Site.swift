import RuleEngine
import YAML

/// A rule pack compiled with a site config, and the services' settings of
/// that config: what a service runs.
///
/// `Site.load` is the one load path of the services and rulecheck. The site
/// config is parsed once; the engine reads its keys (topics, meters, Home
/// Assistant) and accepts the services' keys, which are read here from the
/// same tree into the same diagnostics, so every key is checked with
/// `file:line:column`.
public struct Site: Sendable {
    /// Every pack's program and who owns which meter.
    public var programs: ProgramSet
    /// The first pack's program: with one pack, the program.
    public var program: Program { programs.first }
    public var settings: ServiceSettings
    /// The config sender's status topic: `config_sender.status_topic`, or
    /// `<root>/config-sender/status[/<instance>]`.
    public var configSenderStatusTopic: String {
        settings.configSender.statusTopic ?? "\(programs.rootTopic)/config-sender/status" + (programs.instance.map { "/\($0)" } ?? "")
    }
    /// Problems that stop nothing (a deprecated key): log or print them.
    public var warnings: DiagnosticReport

    /// Loads, checks and compiles the pack at `rules` with the site config
    /// `config` (nil: the defaults). Throws every diagnostic when one is an error.
    public static func load(rules: String, config: String?) throws(DiagnosticReport) -> Site {
        try load(rules: [rules], config: config)
    }

    /// Loads every pack under `rules` (a pack directory, a directory of pack
    /// directories, or several of either) with the site config `config`.
    public static func load(rules: [String], config: String?) throws(DiagnosticReport) -> Site {
        var settings = ServiceSettings()
        let (programs, warnings) = try Compiler.build(packs: rules, config: config, shared: ServiceSettingsLoader.keys) { root, ctx in
            settings = ServiceSettingsLoader.load(root, ctx)
        }
        return Site(programs: programs, settings: settings, warnings: warnings)
    }

    /// Loads one site config alone, every key checked, and adds its diagnostics
    /// to `report`; `rulecheck lint` then checks `config` against each pack with
    /// `Compiler.compile(pack:site:into:)`. Nil when the file is unusable.
    public static func loadSettings(at file: String, into report: inout DiagnosticReport) -> (config: SiteConfig, settings: ServiceSettings)? {
        var settings = ServiceSettings()
        let config = Compiler.loadSiteConfig(at: file, shared: ServiceSettingsLoader.keys, into: &report) { root, ctx in
            settings = ServiceSettingsLoader.load(root, ctx)
        }
        return config.map { ($0, settings) }
    }
}
