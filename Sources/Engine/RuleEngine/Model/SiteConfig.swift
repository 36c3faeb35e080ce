import Topics
import YAML

/// The engine's part of the site config (`config/config.yaml`): topics,
/// meters, exclusions, Home Assistant, and the two proxy keys the program
/// writes into what it announces.
///
/// Loaded through the same YAML layer and diagnostics as a rule pack; the
/// values a pack defines (groups, settings) are checked against the pack by
/// `Compiler`. The services' settings in the same file (brokers, the journal,
/// timers, config-sender's whole section) are read by the `SiteSettings`
/// target from the same parse; this loader only accepts the keys it is given
/// for them (`Compiler.build(rules:config:shared:readShared:)`).
public struct SiteConfig: Sendable {
    public var file: String
    public var rootTopic: String = "kpm33b"
    /// This deployment's name when several run side by side (scale-out): it
    /// goes into client ids, status topics, health devices, state
    /// directories and each meter's discovery message. nil: the only one.
    public var instance: String?
    public var defaults = MeterConfig()
    public var meters: [String: MeterConfig] = [:]
    public var meterMarks: [String: Mark] = [:]
    public var exclude: [Located<String>] = []
    /// `default_pack`: the pack of an id no loaded pack claims (several packs only).
    public var defaultPack: Located<String>?
    public var homeAssistant = HomeAssistantConfig()
    /// `proxy.status_topic`: the proxy's status, the availability of every
    /// announced entity; nil: `<root>/status[/<instance>]`.
    public var statusTopic: String?
    /// `proxy.clock_skew_threshold_s`: a meter clock off by more than this is
    /// reported in its discovery message (config-sender then sets it).
    public var clockSkewThresholdSeconds = 300

    public init(file: String) { self.file = file }

    /// The meter's own settings over the defaults.
    public func meter(_ id: String) -> MeterConfig {
        guard let own = meters[id] else { return defaults }
        var merged = defaults
        if let context = own.context { merged.context = context }
        if let groups = own.groups { merged.groups = groups }
        for (k, v) in own.settings { merged.settings[k] = v }
        return merged
    }
}

public struct MeterConfig: Sendable {
    /// `pack:` of a listed meter: the pack that runs it, over any pack's id pattern.
    public var pack: Located<String>?
    public var context: Located<String>?
    public var groups: [Located<String>]?
    public var settings: [String: Located<Int>] = [:]
    public init() {}
}

public struct HomeAssistantConfig: Sendable {
    /// How a meter's entities are announced: one retained device config per
    /// meter with all of its components (`<prefix>/device/<node>/config`,
    /// Home Assistant 2024.11 and later), or one retained config per entity
    /// (`<prefix>/sensor/<node>/<field>/config`, for older versions).
    public enum Discovery: String, Sendable {
        case device, entity
    }

    public var enabled = true
    public var discoveryPrefix = "homeassistant"
    public var expireAfterFactor = 3.0
    public var discovery = Discovery.device
}

enum SiteConfigLoader {
    /// Reads the engine's keys of a parsed site config (`root` nil: the file
    /// was empty or did not parse). `shared` lists the keys another reader
    /// interprets, by section (`""` for the top level): they are accepted here,
    /// and suggested for a misspelt key, but not read. nil: the file is unusable.
    static func load(_ root: YAMLNode?, _ ctx: LoadContext, shared: [String: [String]]) -> SiteConfig? {
        var config = SiteConfig(file: ctx.file)
        guard let root else { return ctx.diagnostics.isEmpty ? config : nil }
        guard let top = ctx.mapping(root, "the site config", known: [
            "root_topic", "instance", "meters", "exclude", "homeassistant", "proxy", "config_sender", "default_pack",
        ] + (shared[""] ?? [])) else { return nil }
        if let instance = top.string("instance") {
            config.instance = instance.value
            if !Topic.isPlainName(instance.value, allowSlash: false) {
                ctx.error(.invalidName, "instance '\(instance.value)' cannot be a topic level",
                          hint: "use letters, digits, '_' and '-' only: it names topics, client ids and a directory", at: instance.mark)
            }
        }
        if let root = top.string("root_topic") {
            config.rootTopic = root.value
            if !Topic.isPlainName(root.value, allowSlash: true) {
                ctx.error(.invalidName, "root topic '\(root.value)' is not a valid topic prefix",
                          hint: "use letters, digits, '_', '-' and '/' between levels; no '+', '#' or spaces", at: root.mark)
            }
        }
        if let node = top.node("meters"), let entries = ctx.namedEntries(node, "'meters'") {
            for entry in entries {
                let meter = readMeter(entry, ctx)
                if entry.key.value == "defaults" {
                    config.defaults = meter
                    if config.defaults.groups == nil { config.defaults.groups = [] }
                } else {
                    config.meters[entry.key.value] = meter
                    config.meterMarks[entry.key.value] = entry.key.mark
                }
            }
        }
        config.exclude = top.stringList("exclude") ?? []
        config.defaultPack = top.string("default_pack")
        if let node = top.node("homeassistant"),
           let h = ctx.mapping(node, "'homeassistant'", known: ["enabled", "discovery_prefix", "expire_after_factor", "discovery"]) {
            if let v = h.bool("enabled") { config.homeAssistant.enabled = v.value }
            if let v = h.string("discovery") {
                if let mode = HomeAssistantConfig.Discovery(rawValue: v.value) {
                    config.homeAssistant.discovery = mode
                } else {
                    ctx.error(.invalidValue, "'discovery' must be 'device' or 'entity', not '\(v.value)'",
                              hint: "'device' (the default) needs Home Assistant 2024.11 or later; 'entity' works with any version", at: v.mark)
                }
            }
            if let v = h.string("discovery_prefix") {
                config.homeAssistant.discoveryPrefix = v.value
                if !Topic.isPlainName(v.value, allowSlash: true) {
                    ctx.error(.invalidName, "discovery prefix '\(v.value)' is not a valid topic prefix", at: v.mark)
                }
            }
            if let v = h.double("expire_after_factor") {
                config.homeAssistant.expireAfterFactor = v.value
                if v.value <= 1 {
                    ctx.error(.invalidValue, "'expire_after_factor' must be greater than 1",
                              hint: "an entity would expire before the next reading arrives; 3 is a good choice", at: v.mark)
                }
            }
        }
        if let node = top.node("proxy"), let p = ctx.mapping(node, "'proxy'", known: [
            "status_topic", "clock_skew_threshold_s",
        ] + (shared["proxy"] ?? [])) {
            config.statusTopic = p.string("status_topic")?.value
            ctx.positive(p.int("clock_skew_threshold_s")).map { config.clockSkewThresholdSeconds = $0 }
        }
        // config-sender's section is the services' alone: its shape and keys are checked here, once.
        if let node = top.node("config_sender") {
            _ = ctx.mapping(node, "'config_sender'", known: shared["config_sender"] ?? [])
        }
        return config
    }

    static func readMeter(_ entry: YAMLEntry, _ ctx: LoadContext) -> MeterConfig {
        var meter = MeterConfig()
        let what = entry.key.value == "defaults" ? "'meters.defaults'" : "meter '\(entry.key.value)'"
        let known = entry.key.value == "defaults" ? ["groups", "settings"] : ["pack", "context", "groups", "settings"]
        guard let m = ctx.mapping(entry.value, what, known: known) else { return meter }
        meter.pack = m.string("pack")
        if let context = m.string("context") {
            meter.context = context
            if !Topic.isPlainName(context.value, allowSlash: false) {
                ctx.error(.invalidName, "context '\(context.value)' cannot be a topic level",
                          hint: "use letters, digits, '_' and '-' only", at: context.mark)
            }
        }
        meter.groups = m.stringList("groups")
        if let node = m.node("settings"), let entries = ctx.namedEntries(node, "'settings' of \(what)") {
            for s in entries {
                if let v = ctx.int(s.value, "setting '\(s.key.value)'") { meter.settings[s.key.value] = v }
            }
        }
        return meter
    }
}
