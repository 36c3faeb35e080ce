import Foundation
@testable import SiteSettings
import Testing

/// `ReloadPolicy.changes`: every changed setting a service uses, by its YAML
/// path, applied live or named as needing a restart.
@Suite struct ReloadPolicyTests {
    static func changes(_ old: String, _ new: String, for service: SiteService) throws -> [String] {
        try ReloadPolicy.changes(from: Fixtures.site(old), to: Fixtures.site(new), for: service).map(\.description)
    }

    @Test func theSameConfigChangesNothingAndADefaultWrittenOutIsNoChange() throws {
        let shipped = try String(contentsOfFile: Fixtures.config, encoding: .utf8)
        for service in SiteService.allCases {
            #expect(try Self.changes(shipped, shipped, for: service) == [])
            #expect(try Self.changes("", "proxy: { journal_fsync: interval, status_interval_s: 60 }\nlog_level: info\n",
                                     for: service) == ["log_level: (none) → info (applied)"])
        }
    }

    @Test func theJournalsFsyncPolicyNeedsARestart() throws {
        #expect(try Self.changes("", "proxy: { journal_fsync: always }\n", for: .proxy) == [
            "proxy.journal_fsync: interval → always (needs a restart)",
            "proxy.journal_fsync_interval_ms: 1000 → (none) (needs a restart)",
        ])
        #expect(try Self.changes("", "proxy: { journal_fsync_interval_ms: 250 }\n", for: .proxy) == [
            "proxy.journal_fsync_interval_ms: 1000 → 250 (needs a restart)",
        ])
        // The config sender has no journal.
        #expect(try Self.changes("", "proxy: { journal_fsync: always }\n", for: .configSender) == [])
    }

    @Test func theProxysTimersAndBoundsApplyLive() throws {
        #expect(try Self.changes("proxy: { status_interval_s: 30 }\n", """
        proxy: { status_interval_s: 10, max_payload_bytes: 1024, max_meters: 5, journal_max_bytes: 2097152, discovery_on_internal: false }
        """, for: .proxy) == [
            "proxy.status_interval_s: 30 → 10 (applied)",
            "proxy.max_payload_bytes: 65536 → 1024 (applied)",
            "proxy.max_meters: 250000 → 5 (applied)",
            "proxy.journal_max_bytes: 1073741824 → 2097152 (applied)",
            "proxy.discovery_on_internal: true → false (applied)",
        ])
    }

    @Test func topicsAndIdentityNeedARestart() throws {
        #expect(try Self.changes("", """
        root_topic: site
        instance: a
        homeassistant: { discovery_prefix: ha }
        proxy: { status_topic: site/proxy, shared_subscription_group: g }
        config_sender: { status_topic: site/sender }
        """, for: .proxy) == [
            "root_topic: kpm33b → site (needs a restart)",
            "instance: (none) → a (needs a restart)",
            "homeassistant.discovery_prefix: homeassistant → ha (needs a restart)",
            "proxy.status_topic: (none) → site/proxy (needs a restart)",
            "proxy.shared_subscription_group: (none) → g (needs a restart)",
        ])
    }

    @Test func brokersNeedARestartAndEachServiceSeesItsOwnClient() throws {
        let new = """
        brokers:
          internal:
            port: 1884
            tls: { ca_file: ca.pem }
            clients:
              proxy: { username: p, password_env: P }
              config_sender: { client_id: cs }
        """
        #expect(try Self.changes("", new, for: .proxy) == [
            "brokers.internal.port: 1883 → 1884 (needs a restart)",
            "brokers.internal.tls.ca_file: (none) → ca.pem (needs a restart)",
            "brokers.internal.clients.proxy.username: (none) → p (needs a restart)",
            "brokers.internal.clients.proxy.password_env: (none) → P (needs a restart)",
        ])
        #expect(try Self.changes("", new, for: .configSender) == [
            "brokers.internal.port: 1883 → 1884 (needs a restart)",
            "brokers.internal.tls.ca_file: (none) → ca.pem (needs a restart)",
            "brokers.internal.clients.config_sender.client_id: (none) → cs (needs a restart)",
        ])
    }

    @Test func theConfigSendersTimersApplyLiveItsSourceAndShareNeedARestart() throws {
        let new = """
        proxy: { clock_skew_threshold_s: 60 }
        config_sender: { reply_timeout_s: 5, retries: 1, periodic_pass_s: 60, max_in_flight: 10, min_spacing_ms: 0, partition: 1/2, discovery_from: internal }
        """
        #expect(try Self.changes("", new, for: .configSender) == [
            "proxy.clock_skew_threshold_s: 300 → 60 (applied)",
            "config_sender.reply_timeout_s: 15.0 → 5.0 (applied)",
            "config_sender.retries: 3 → 1 (applied)",
            "config_sender.periodic_pass_s: 600 → 60 (applied)",
            "config_sender.max_in_flight: 100 → 10 (applied)",
            "config_sender.min_spacing_ms: 200 → 0 (applied)",
            "config_sender.partition: (none) → 1/2 (needs a restart)",
            "config_sender.discovery_from: central → internal (needs a restart)",
        ])
        #expect(try Self.changes("", new, for: .proxy) == ["proxy.clock_skew_threshold_s: 300 → 60 (applied)"])
    }

    @Test func metersExclusionsAndHomeAssistantApplyLive() throws {
        let old = """
        meters:
          33B1225950027: { context: garage, settings: { upload_interval_seconds: 30 } }
          33B1225950028: { context: cellar }
        """
        let new = """
        meters:
          defaults: { groups: [current] }
          33B1225950027: { context: garage, settings: { upload_interval_seconds: 60 } }
        exclude: [33B1225950029]
        homeassistant: { enabled: false, discovery: entity, expire_after_factor: 5 }
        """
        let changes = try ReloadPolicy.changes(from: Fixtures.site(old), to: Fixtures.site(new), for: .proxy)
        #expect(changes.map(\.description) == [
            "exclude: [] → [33B1225950029] (applied)",
            "meters.defaults.groups: (none) → [current] (applied)",
            "meters.33B1225950027.settings.upload_interval_seconds: 30 → 60 (applied)",
            "homeassistant.enabled: true → false (applied)",
            "homeassistant.discovery: device → entity (applied)",
            "homeassistant.expire_after_factor: 3.0 → 5.0 (applied)",
            "meters.33B1225950028.context: cellar → (none) (applied)",
        ])
        #expect(ReloadPolicy.restartNeeded(from: try Fixtures.site(old), to: try Fixtures.site(new), for: .proxy).isEmpty)
    }
}

/// Every key the services' loader reads has a reload policy: a key added to
/// the loader without one fails here.
@Suite struct ReloadPolicyCoverageTests {
    @Test func everyServiceKeyIsCompared() throws {
        let site = try Fixtures.site("")
        let paths = Set(SiteService.allCases.flatMap { ReloadPolicy.settings(of: site, for: $0).map(\.path) })
        let deprecated: Set = ["proxy.outbox_limit"]
        var missing: [String] = []
        for (section, keys) in ServiceSettingsLoader.keys {
            for key in keys where key != "brokers" {
                let path = section.isEmpty ? key : "\(section).\(key)"
                if !paths.contains(path) && !deprecated.contains(path) { missing.append(path) }
            }
        }
        #expect(missing.sorted() == [])
        // The engine's keys the services compare too.
        for path in ["root_topic", "instance", "exclude", "default_pack", "proxy.status_topic", "proxy.clock_skew_threshold_s",
                     "homeassistant.enabled", "homeassistant.discovery_prefix", "homeassistant.discovery",
                     "homeassistant.expire_after_factor", "brokers.internal.port", "brokers.central.clients.proxy.username"] {
            #expect(paths.contains(path), "\(path)")
        }
    }
}
