import RuleEngine

/// Which settings of the site config a reload applies and which need a
/// restart, setting by setting.
///
/// A reload (SIGHUP) loads, checks and compiles the rules and the site config
/// again and swaps the program: everything the program carries (meters,
/// exclusions, the default pack, Home Assistant's entities, the clock skew
/// threshold) applies at once, and so do the timers and bounds each service
/// reads again on reload. What a running service has built its connections,
/// subscriptions, topics, files or identity from keeps its old value until a
/// restart: the brokers and their accounts, the root topic, the instance, the
/// status topics, the discovery prefix, the journal's fsync policy, the shared
/// subscription group, where config-sender reads discovery and its partition.
public enum ReloadPolicy {
    /// Every setting `service` uses whose value differs between `old` and
    /// `new`, in the order of the site config's sections, with what a reload
    /// does with it. Values are compared as loaded (a default written out is
    /// no change).
    public static func changes(from old: Site, to new: Site, for service: SiteService) -> [SettingChange] {
        let before = Dictionary(settings(of: old, for: service).map { ($0.path, $0) }, uniquingKeysWith: { a, _ in a })
        let after = settings(of: new, for: service)
        var changes: [SettingChange] = []
        var seen = Set<String>()
        for setting in after {
            seen.insert(setting.path)
            let was = before[setting.path]?.value ?? none
            if was != setting.value {
                changes.append(SettingChange(path: setting.path, old: was, new: setting.value, effect: setting.effect))
            }
        }
        // Keys only the old config had (a meter or a client removed).
        for setting in settings(of: old, for: service) where !seen.contains(setting.path) && setting.value != none {
            changes.append(SettingChange(path: setting.path, old: setting.value, new: none, effect: setting.effect))
        }
        return changes
    }

    /// The changes of `changes(from:to:for:)` that take effect only after a restart.
    public static func restartNeeded(from old: Site, to new: Site, for service: SiteService) -> [SettingChange] {
        changes(from: old, to: new, for: service).filter { $0.effect == .restart }
    }

    static let none = "(none)"

    /// A list as YAML's flow style writes it: `[a, b]`.
    static func flow(_ items: [String]) -> String { "[" + items.joined(separator: ", ") + "]" }

    /// One setting's value in one site, and what a reload does with a change of it.
    struct Setting {
        var path: String
        var value: String
        var effect: SettingChange.Effect
    }

    /// Every setting of `site` that `service` uses, by YAML path.
    static func settings(of site: Site, for service: SiteService) -> [Setting] {
        var list: [Setting] = []
        let proxy = service == .proxy, sender = service == .configSender
        func add(_ path: String, _ value: String?, _ effect: SettingChange.Effect, if used: Bool = true) {
            if used { list.append(Setting(path: path, value: value ?? none, effect: effect)) }
        }
        let config = site.programs.siteConfig, settings = site.settings

        // The top level: names the services build topics, client ids and directories from.
        add("root_topic", config.rootTopic, .restart)
        add("instance", config.instance, .restart)
        add("log_level", settings.logLevel, .live)
        add("default_pack", config.defaultPack?.value, .live)
        add("exclude", flow(config.exclude.map(\.value).sorted()), .live)

        // Meters: carried by the program.
        for (name, meter) in [("defaults", config.defaults)] + config.meters.sorted(by: { $0.key < $1.key }) {
            let prefix = "meters.\(name)"
            add("\(prefix).pack", meter.pack?.value, .live)
            add("\(prefix).context", meter.context?.value, .live)
            add("\(prefix).groups", meter.groups.map { flow($0.map(\.value)) }, .live)
            for (key, value) in meter.settings.sorted(by: { $0.key < $1.key }) {
                add("\(prefix).settings.\(key)", String(value.value), .live)
            }
        }

        // Home Assistant: entities converge on the new program; the prefix
        // is where the running services' retained configs are.
        let ha = config.homeAssistant
        add("homeassistant.enabled", String(ha.enabled), .live)
        add("homeassistant.discovery_prefix", ha.discoveryPrefix, .restart)
        add("homeassistant.discovery", ha.discovery.rawValue, .live)
        add("homeassistant.expire_after_factor", String(ha.expireAfterFactor), .live)

        // Brokers: connections are made once.
        for name in ServiceSettingsLoader.brokerNames {
            let broker = settings.brokers[name] ?? SiteBrokerSettings()
            let prefix = "brokers.\(name)"
            add("\(prefix).host", broker.host, .restart)
            add("\(prefix).port", String(broker.port), .restart)
            add("\(prefix).protocol", broker.protocolVersion, .restart)
            add("\(prefix).keepalive_s", String(broker.keepAliveSeconds), .restart)
            add("\(prefix).tls.ca_file", broker.tls?.caFile, .restart)
            add("\(prefix).tls.cert_file", broker.tls?.certFile, .restart)
            add("\(prefix).tls.key_file", broker.tls?.keyFile, .restart)
            let client = broker.clients[service.rawValue] ?? SiteClientSettings()
            let clientPrefix = "\(prefix).clients.\(service.rawValue)"
            add("\(clientPrefix).client_id", client.clientID, .restart)
            add("\(clientPrefix).username", client.username, .restart)
            add("\(clientPrefix).password_credential", client.passwordCredential, .restart)
            add("\(clientPrefix).password_file", client.passwordFile, .restart)
            add("\(clientPrefix).password_env", client.passwordEnv, .restart)
        }

        // The proxy.
        let p = settings.proxy
        add("proxy.status_topic", config.statusTopic, .restart, if: proxy)
        add("proxy.clock_skew_threshold_s", String(config.clockSkewThresholdSeconds), .live)
        add("proxy.status_interval_s", String(p.statusIntervalSeconds), .live, if: proxy)
        add("proxy.max_payload_bytes", String(p.maxPayloadBytes), .live, if: proxy)
        add("proxy.max_meters", String(p.maxMeters), .live, if: proxy)
        add("proxy.journal_max_bytes", String(p.journalMaxBytes), .live, if: proxy)
        let (fsync, fsyncInterval): (String, Int?) = switch p.journalFsync {
        case .never: ("never", nil)
        case .always: ("always", nil)
        case .interval(let milliseconds): ("interval", milliseconds)
        }
        add("proxy.journal_fsync", fsync, .restart, if: proxy)
        add("proxy.journal_fsync_interval_ms", fsyncInterval.map(String.init), .restart, if: proxy)
        add("proxy.discovery_on_internal", String(p.discoveryOnInternal), .live, if: proxy)
        add("proxy.shared_subscription_group", p.sharedSubscriptionGroup, .restart, if: proxy)

        // The config sender.
        let c = settings.configSender
        add("config_sender.status_topic", c.statusTopic, .restart, if: sender)
        add("config_sender.reply_timeout_s", String(c.replyTimeoutSeconds), .live, if: sender)
        add("config_sender.retries", String(c.retries), .live, if: sender)
        add("config_sender.periodic_pass_s", String(c.periodicPassSeconds), .live, if: sender)
        add("config_sender.max_in_flight", String(c.maxInFlight), .live, if: sender)
        add("config_sender.min_spacing_ms", String(c.minSpacingMilliseconds), .live, if: sender)
        add("config_sender.partition", c.partition?.description, .restart, if: sender)
        add("config_sender.discovery_from", c.discoveryFrom.rawValue, .restart, if: sender)
        return list
    }
}
