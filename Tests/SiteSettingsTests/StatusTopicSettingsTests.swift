import Foundation
import RuleEngine
import SiteSettings
import Testing

/// The status topics: the proxy's is the engine's option (announced entities
/// follow it), config-sender's is config-sender's setting; each decoded once.
@Suite struct StatusTopicSettingsTests {
    @Test func defaultsFollowTheRootTopicAndTheInstance() throws {
        let plain = try Fixtures.site("")
        #expect(plain.programs.statusTopic == "kpm33b/status")
        #expect(plain.configSenderStatusTopic == "kpm33b/config-sender/status")
        let instance = try Fixtures.site("root_topic: site/energy\ninstance: a\n")
        #expect(instance.programs.statusTopic == "site/energy/status/a")
        #expect(instance.configSenderStatusTopic == "site/energy/config-sender/status/a")
    }

    @Test func writtenTopicsWin() throws {
        let site = try Fixtures.site("""
        instance: a
        proxy: { status_topic: ops/proxy, clock_skew_threshold_s: 60 }
        config_sender: { status_topic: ops/sender }
        """)
        #expect(site.programs.statusTopic == "ops/proxy")
        #expect(site.programs.siteConfig.clockSkewThresholdSeconds == 60)
        #expect(site.settings.configSender.statusTopic == "ops/sender")
        #expect(site.configSenderStatusTopic == "ops/sender")
    }
}
