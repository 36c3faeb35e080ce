import YAML

/// The site configuration (`config/config.yaml`): brokers, topics, meters.
///
/// Loaded through the same YAML layer and diagnostics as a rule pack; the
/// values a pack defines (groups, settings) are checked against the pack by
/// `Compiler`.
public struct SiteConfig: Sendable {
    public var file: String
    public var rootTopic: String = "kpm33b"
    public var brokers: [String: BrokerConfig] = [:]
    public var defaults = MeterConfig()
    public var meters: [String: MeterConfig] = [:]
    public var meterMarks: [String: Mark] = [:]
    public var exclude: [Located<String>] = []
    public var homeAssistant = HomeAssistantConfig()
    public var proxy = ProxyConfig()
    public var configSender = ConfigSenderConfig()

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
    public var context: Located<String>?
    public var groups: [Located<String>]?
    public var settings: [String: Located<Int>] = [:]
    public init() {}
}

public struct BrokerConfig: Sendable {
    public var host: String = "127.0.0.1"
    public var port: Int = 1883
    public var protocolVersion: String = "5"
    public var keepAliveSeconds: Int = 30
    public var tls: TLSConfig?
    public var clients: [String: ClientConfig] = [:]
    public init() {}
}

public struct TLSConfig: Sendable {
    public var caFile: String?
    public var certFile: String?
    public var keyFile: String?
}

/// How one service logs in to one broker. The password is never in the YAML:
/// it comes from a systemd credential, a file, or an environment variable.
public struct ClientConfig: Sendable {
    public var clientID: String?
    public var username: String?
    public var passwordCredential: String?
    public var passwordFile: String?
    public var passwordEnv: String?
    public init() {}
}

public struct HomeAssistantConfig: Sendable {
    public var enabled = true
    public var discoveryPrefix = "homeassistant"
    public var expireAfterFactor = 3.0
}

public struct ProxyConfig: Sendable {
    public var statusTopic: String?
    public var statusIntervalSeconds = 60
    public var outboxLimit = 100_000
    public var maxPayloadBytes = 65_536
    public var clockSkewThresholdSeconds = 300
}

public struct ConfigSenderConfig: Sendable {
    public var statusTopic: String?
    public var replyTimeoutSeconds = 15.0
    public var retries = 3
    public var periodicPassSeconds = 600
}

enum SiteConfigLoader {
    static func load(bytes: [UInt8], file: String) -> (SiteConfig?, [Diagnostic]) {
        let ctx = LoadContext(file: file)
        var config = SiteConfig(file: file)
        guard let root = ctx.parse(bytes) else { return (ctx.diagnostics.isEmpty ? config : nil, ctx.diagnostics) }
        guard let top = ctx.mapping(root, "the site config", known: [
            "root_topic", "brokers", "meters", "exclude", "homeassistant", "proxy", "config_sender",
        ]) else { return (nil, ctx.diagnostics) }
        if let root = top.string("root_topic") {
            config.rootTopic = root.value
            if !isTopicSafe(root.value, allowSlash: true) {
                ctx.error(.invalidName, "root topic '\(root.value)' is not a valid topic prefix",
                          hint: "use letters, digits, '_', '-' and '/' between levels; no '+', '#' or spaces", at: root.mark)
            }
        }
        if let node = top.node("brokers"), let entries = ctx.namedEntries(node, "'brokers'") {
            for entry in entries {
                if !["internal", "central"].contains(entry.key.value) {
                    ctx.error(.unknownKey, "unknown broker '\(entry.key.value)'",
                              hint: Suggestion.hint(for: entry.key.value, in: ["internal", "central"]) ?? "the brokers are 'internal' and 'central'",
                              at: entry.key.mark)
                    continue
                }
                if let broker = readBroker(entry, ctx) { config.brokers[entry.key.value] = broker }
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
        if let node = top.node("homeassistant"),
           let h = ctx.mapping(node, "'homeassistant'", known: ["enabled", "discovery_prefix", "expire_after_factor"]) {
            if let v = h.bool("enabled") { config.homeAssistant.enabled = v.value }
            if let v = h.string("discovery_prefix") {
                config.homeAssistant.discoveryPrefix = v.value
                if !isTopicSafe(v.value, allowSlash: true) {
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
            "status_topic", "status_interval_s", "outbox_limit", "max_payload_bytes", "clock_skew_threshold_s",
        ]) {
            config.proxy.statusTopic = p.string("status_topic")?.value
            positive(p.int("status_interval_s"), ctx).map { config.proxy.statusIntervalSeconds = $0 }
            positive(p.int("outbox_limit"), ctx).map { config.proxy.outboxLimit = $0 }
            positive(p.int("max_payload_bytes"), ctx).map { config.proxy.maxPayloadBytes = $0 }
            positive(p.int("clock_skew_threshold_s"), ctx).map { config.proxy.clockSkewThresholdSeconds = $0 }
        }
        if let node = top.node("config_sender"), let c = ctx.mapping(node, "'config_sender'", known: [
            "status_topic", "reply_timeout_s", "retries", "periodic_pass_s",
        ]) {
            config.configSender.statusTopic = c.string("status_topic")?.value
            if let v = c.double("reply_timeout_s") {
                if v.value > 0 { config.configSender.replyTimeoutSeconds = v.value }
                else { ctx.error(.invalidValue, "'reply_timeout_s' must be greater than 0", at: v.mark) }
            }
            if let v = c.int("retries") {
                if v.value >= 0 { config.configSender.retries = v.value }
                else { ctx.error(.invalidValue, "'retries' must not be negative", at: v.mark) }
            }
            positive(c.int("periodic_pass_s"), ctx).map { config.configSender.periodicPassSeconds = $0 }
        }
        return (config, ctx.diagnostics)
    }

    private static func positive(_ value: Located<Int>?, _ ctx: LoadContext) -> Int? {
        guard let value else { return nil }
        guard value.value > 0 else {
            ctx.error(.invalidValue, "the value must be greater than 0", at: value.mark)
            return nil
        }
        return value.value
    }

    static func readBroker(_ entry: YAMLEntry, _ ctx: LoadContext) -> BrokerConfig? {
        let what = "broker '\(entry.key.value)'"
        guard let m = ctx.mapping(entry.value, what, known: ["host", "port", "protocol", "keepalive_s", "tls", "clients"]) else { return nil }
        var broker = BrokerConfig()
        if let v = m.string("host") { broker.host = v.value }
        if let v = m.int("port") {
            if (1...65535).contains(v.value) { broker.port = v.value }
            else { ctx.error(.invalidValue, "port \(v.value) is out of range", hint: "use 1 to 65535", at: v.mark) }
        }
        if let v = m.string("protocol") {
            if ["5", "3.1.1", "5.0"].contains(v.value) { broker.protocolVersion = v.value == "3.1.1" ? "3.1.1" : "5" }
            else { ctx.error(.invalidValue, "unknown MQTT protocol '\(v.value)'", hint: "use 5 or 3.1.1", at: v.mark) }
        }
        if let v = m.int("keepalive_s") { broker.keepAliveSeconds = v.value }
        if let node = m.node("tls"), let t = ctx.mapping(node, "'tls' of \(what)", known: ["ca_file", "cert_file", "key_file"]) {
            broker.tls = TLSConfig(caFile: t.string("ca_file")?.value, certFile: t.string("cert_file")?.value, keyFile: t.string("key_file")?.value)
        }
        if let node = m.node("clients"), let entries = ctx.namedEntries(node, "'clients' of \(what)") {
            for c in entries {
                let services = ["proxy", "config_sender"]
                guard services.contains(c.key.value) else {
                    ctx.error(.unknownKey, "unknown client '\(c.key.value)' in \(what)",
                              hint: Suggestion.hint(for: c.key.value, in: services) ?? "the clients are 'proxy' and 'config_sender'", at: c.key.mark)
                    continue
                }
                if case .mapping(let keys, _) = c.value, let secret = keys.first(where: { $0.key.value == "password" }) {
                    ctx.error(.secretInConfig, "a password must not be written in the config file",
                              hint: "use password_credential (systemd LoadCredential), password_file or password_env", at: secret.key.mark)
                }
                guard let cm = ctx.mapping(c.value, "client '\(c.key.value)'", known: [
                    "client_id", "username", "password", "password_credential", "password_file", "password_env",
                ]) else { continue }
                var client = ClientConfig()
                client.clientID = cm.string("client_id")?.value
                client.username = cm.string("username")?.value
                client.passwordCredential = cm.string("password_credential")?.value
                client.passwordFile = cm.string("password_file")?.value
                client.passwordEnv = cm.string("password_env")?.value
                broker.clients[c.key.value] = client
            }
        }
        return broker
    }

    static func readMeter(_ entry: YAMLEntry, _ ctx: LoadContext) -> MeterConfig {
        var meter = MeterConfig()
        let what = entry.key.value == "defaults" ? "'meters.defaults'" : "meter '\(entry.key.value)'"
        let known = entry.key.value == "defaults" ? ["groups", "settings"] : ["context", "groups", "settings"]
        guard let m = ctx.mapping(entry.value, what, known: known) else { return meter }
        if let context = m.string("context") {
            meter.context = context
            if !isTopicSafe(context.value, allowSlash: false) {
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

    /// Letters, digits, `_`, `-` (and `/` between levels when allowed).
    static func isTopicSafe(_ s: String, allowSlash: Bool) -> Bool {
        guard !s.isEmpty else { return false }
        if allowSlash && (s.hasPrefix("/") || s.hasSuffix("/") || s.contains("//")) { return false }
        return s.unicodeScalars.allSatisfy { c in
            (c.isASCII && (c.properties.isAlphabetic || ("0"..."9").contains(c))) || c == "_" || c == "-" || (allowSlash && c == "/")
        }
    }
}
