import RuleEngine
import Topics
import YAML

/// Reads the services' keys of a site config from the tree the engine's
/// loader parsed, with its helpers and into its diagnostics.
///
/// The engine's loader owns the top level and the `proxy` and
/// `config_sender` sections (it checks their shape and reports unknown keys,
/// accepting those listed in `keys`); this one owns `brokers` entirely and
/// reads its keys of the shared sections — every key of `config_sender`,
/// all but the engine's two of `proxy` — without reporting anything twice.
enum ServiceSettingsLoader {
    /// The keys read here, by section (`""`: the top level).
    static let keys = baseKeys.merging(discoveryKeys) { $0 + $1 }
    static let baseKeys: [String: [String]] = [
        "": ["brokers", "log_level"],
        "proxy": [
            "status_interval_s", "max_payload_bytes", "max_meters",
            "journal_max_bytes", "journal_fsync", "journal_fsync_interval_ms", "outbox_limit",
            "shared_subscription_group",
        ],
        "config_sender": ["status_topic", "reply_timeout_s", "retries", "periodic_pass_s", "partition"] + pacingKeys,
    ]
    /// Discovery on the internal broker: the proxy's copy and where the config sender reads.
    static let discoveryKeys = ["proxy": ["discovery_on_internal"], "config_sender": ["discovery_from"]]
    /// config-sender's pacing keys, read by `readPacing`.
    static let pacingKeys = ["max_in_flight", "min_spacing_ms"]
    static let brokerNames = ["internal", "central"]
    static let clientNames = ["proxy", "config_sender"]

    static func load(_ root: YAMLNode, _ ctx: LoadContext) -> ServiceSettings {
        var settings = ServiceSettings()
        var discoveryFrom: Located<ConfigSenderSettings.DiscoverySource>?
        guard let top = ctx.checkedMapping(root, "the site config", keys: ["brokers", "log_level", "proxy", "config_sender"]) else { return settings }
        if let v = top.string("log_level") {
            if ServiceSettings.logLevels.contains(v.value) { settings.logLevel = v.value }
            else {
                ctx.error(.invalidValue, "unknown log_level '\(v.value)'",
                          hint: Suggestion.hint(for: v.value, in: ServiceSettings.logLevels)
                              ?? "use \(ServiceSettings.logLevels.joined(separator: ", ")) (the default is info)", at: v.mark)
            }
        }
        if let node = top.node("brokers"), let entries = ctx.namedEntries(node, "'brokers'") {
            for entry in entries {
                guard brokerNames.contains(entry.key.value) else {
                    ctx.error(.unknownKey, "unknown broker '\(entry.key.value)'",
                              hint: Suggestion.hint(for: entry.key.value, in: brokerNames) ?? "the brokers are 'internal' and 'central'",
                              at: entry.key.mark)
                    continue
                }
                if let broker = readBroker(entry, ctx) { settings.brokers[entry.key.value] = broker }
            }
        }
        if let node = top.node("proxy"), let p = ctx.checkedMapping(node, "'proxy'", keys: keys["proxy"]!) {
            settings.proxy = readProxy(p, ctx)
        }
        if let node = top.node("config_sender"), let c = ctx.checkedMapping(node, "'config_sender'", keys: keys["config_sender"]!) {
            settings.configSender.statusTopic = c.string("status_topic")?.value
            discoveryFrom = readDiscoveryFrom(c, ctx)
            discoveryFrom.map { settings.configSender.discoveryFrom = $0.value }
            if let v = c.double("reply_timeout_s") {
                if v.value > 0 { settings.configSender.replyTimeoutSeconds = v.value }
                else { ctx.error(.invalidValue, "'reply_timeout_s' must be greater than 0", at: v.mark) }
            }
            if let v = c.int("retries") {
                if v.value >= 0 { settings.configSender.retries = v.value }
                else { ctx.error(.invalidValue, "'retries' must not be negative", at: v.mark) }
            }
            ctx.positive(c.int("periodic_pass_s")).map { settings.configSender.periodicPassSeconds = $0 }
            readPacing(c, ctx, into: &settings.configSender)
            if let v = c.string("partition") {
                if let partition = Partition(v.value) { settings.configSender.partition = partition }
                else {
                    ctx.error(.invalidValue, "'partition' must be \"k/N\" with 0 ≤ k < N, not '\(v.value)'",
                              hint: "N config senders take 0/N … (N-1)/N: each configures the meters whose id hashes to its k", at: v.mark)
                }
            }
        }
        if let from = discoveryFrom, from.value == .internal, !settings.proxy.discoveryOnInternal {
            ctx.error(.invalidValue, "'discovery_from: internal' reads a copy that 'proxy.discovery_on_internal: false' turns off",
                      hint: "set proxy.discovery_on_internal: true, or read discovery from central", at: from.mark)
        }
        return settings
    }

    // MARK: config_sender pacing

    /// `max_in_flight` and `min_spacing_ms`: whole numbers, 0 switching the limit off.
    static func readPacing(_ c: MappingReader, _ ctx: LoadContext, into sender: inout ConfigSenderSettings) {
        if let v = c.int("max_in_flight") {
            if v.value >= 0 { sender.maxInFlight = v.value }
            else {
                ctx.error(.invalidValue, "'max_in_flight' must not be negative",
                          hint: "commands awaiting a reply at once; 0 means no limit, the default is 100", at: v.mark)
            }
        }
        if let v = c.int("min_spacing_ms") {
            if (0...60_000).contains(v.value) { sender.minSpacingMilliseconds = v.value }
            else {
                ctx.error(.invalidValue, "'min_spacing_ms' must be between 0 and 60000",
                          hint: "milliseconds between two commands to one meter; the default is 200", at: v.mark)
            }
        }
    }

    // MARK: proxy

    static func readProxy(_ p: MappingReader, _ ctx: LoadContext) -> ProxySettings {
        var proxy = ProxySettings()
        ctx.positive(p.int("status_interval_s")).map { proxy.statusIntervalSeconds = $0 }
        ctx.positive(p.int("max_payload_bytes")).map { proxy.maxPayloadBytes = $0 }
        if let v = p.int("max_meters") {
            if v.value >= 1 { proxy.maxMeters = v.value }
            else {
                ctx.error(.invalidValue, "'max_meters' must be at least 1",
                          hint: "the most meters the proxy keeps state for (about 1 KiB each); the default is \(ProxySettings.defaultMaxMeters)",
                          at: v.mark)
            }
        }
        if let v = p.int("journal_max_bytes") {
            if v.value >= ProxySettings.minimumJournalBytes { proxy.journalMaxBytes = v.value }
            else {
                ctx.error(.invalidValue, "'journal_max_bytes' must be at least \(ProxySettings.minimumJournalBytes) (1 MiB)",
                          hint: "the journal holds the backlog while the central broker is away; the default is 1073741824 (1 GiB)",
                          at: v.mark)
            }
        }
        let interval = ctx.positive(p.int("journal_fsync_interval_ms")) ?? 1000
        proxy.journalFsync = .interval(milliseconds: interval)
        if let v = p.string("journal_fsync") {
            let modes = ProxySettings.fsyncModes
            switch v.value {
            case "never": proxy.journalFsync = .never
            case "always": proxy.journalFsync = .always
            case "interval": break
            default:
                ctx.error(.invalidValue, "unknown journal_fsync '\(v.value)'",
                          hint: Suggestion.hint(for: v.value, in: modes) ?? "use \(modes.joined(separator: ", "))", at: v.mark)
            }
        }
        // Accepted so that an old config still loads; the outbox it bounded is gone.
        if let mark = p.keyMark("outbox_limit") {
            ctx.warning(.deprecatedKey, "'outbox_limit' is deprecated and ignored",
                        hint: "the proxy keeps its backlog in a disk journal bounded by journal_max_bytes; remove outbox_limit",
                        at: mark)
        }
        p.bool("discovery_on_internal").map { proxy.discoveryOnInternal = $0.value }
        if let v = p.string("shared_subscription_group") {
            if Topic.isPlainName(v.value, allowSlash: false) { proxy.sharedSubscriptionGroup = v.value }
            else {
                ctx.error(.invalidValue, "'shared_subscription_group' must be one topic level, not '\(v.value)'",
                          hint: "letters, digits, '_' and '-'; the proxy subscribes with $share/<name>/…", at: v.mark)
            }
        }
        return proxy
    }

    /// `config_sender.discovery_from`: `central` or `internal`.
    static func readDiscoveryFrom(_ c: MappingReader, _ ctx: LoadContext) -> Located<ConfigSenderSettings.DiscoverySource>? {
        guard let v = c.string("discovery_from") else { return nil }
        if let source = ConfigSenderSettings.DiscoverySource(rawValue: v.value) { return Located(source, v.mark) }
        let names = ConfigSenderSettings.DiscoverySource.allCases.map(\.rawValue)
        ctx.error(.invalidValue, "unknown discovery_from '\(v.value)'",
                  hint: Suggestion.hint(for: v.value, in: names)
                      ?? "use central (the default) or internal",
                  at: v.mark)
        return nil
    }

    static func readBroker(_ entry: YAMLEntry, _ ctx: LoadContext) -> SiteBrokerSettings? {
        let what = "broker '\(entry.key.value)'"
        guard let m = ctx.mapping(entry.value, what, known: ["host", "port", "protocol", "keepalive_s", "tls", "clients"]) else { return nil }
        var broker = SiteBrokerSettings()
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
            broker.tls = SiteTLSSettings(caFile: t.string("ca_file")?.value, certFile: t.string("cert_file")?.value, keyFile: t.string("key_file")?.value)
        }
        if let node = m.node("clients"), let entries = ctx.namedEntries(node, "'clients' of \(what)") {
            for c in entries {
                guard clientNames.contains(c.key.value) else {
                    ctx.error(.unknownKey, "unknown client '\(c.key.value)' in \(what)",
                              hint: Suggestion.hint(for: c.key.value, in: clientNames) ?? "the clients are 'proxy' and 'config_sender'", at: c.key.mark)
                    continue
                }
                if case .mapping(let keys, _) = c.value, let secret = keys.first(where: { $0.key.value == "password" }) {
                    ctx.error(.secretInConfig, "a password must not be written in the config file",
                              hint: "use password_credential (systemd LoadCredential), password_file or password_env", at: secret.key.mark)
                }
                guard let cm = ctx.mapping(c.value, "client '\(c.key.value)'", known: [
                    "client_id", "username", "password", "password_credential", "password_file", "password_env",
                ]) else { continue }
                var client = SiteClientSettings()
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
}
