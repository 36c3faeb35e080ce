import Foundation
import RuleEngine
import Journal
import SiteSettings
import Testing

/// Site configs with the services' keys, loaded as a service loads them
/// (`Site.load` with the shipped pack): the exact text an operator sees.
@Suite struct SiteDiagnosticsTests {
    @Test func theShippedPackAndConfigAreClean() throws {
        let site = try Site.load(rules: Fixtures.pack, config: Fixtures.config)
        #expect(site.warnings.diagnostics.isEmpty, "\(site.warnings)")
        #expect(site.settings.brokers["internal"]?.port == 11883)
        #expect(site.settings.proxy.journalMaxBytes == 1_073_741_824)
        #expect(site.settings.proxy.journalFsync == .interval(milliseconds: 1000))
    }

    @Test func brokerPortAndPasswordWithTheRulesProblems() {
        let (text, _) = Fixtures.load("""
        brokers:
          central:
            port: 70000
            clients:
              proxy: { password: hunter2 }
        meters:
          defaults:
            groups: [curent]
        """)
        #expect(text == """
        site.yaml:3:11: error[C009]: port 70000 is out of range
         3 |     port: 70000
           |           ^
        hint: use 1 to 65535
        site.yaml:5:16: error[C001]: a password must not be written in the config file
         5 |       proxy: { password: hunter2 }
           |                ^
        hint: use password_credential (systemd LoadCredential), password_file or password_env
        site.yaml:8:14: error[C008]: unknown group 'curent'
         8 |     groups: [curent]
           |              ^
        hint: did you mean 'current'?
        3 errors found
        """)
    }

    @Test func logLevel() {
        let (text, settings) = Fixtures.load("log_level: warning\n")
        #expect(text == "no errors")
        #expect(settings?.logLevel == "warning")
        let (bad, _) = Fixtures.load("log_level: warn1ng\n")
        #expect(bad == """
        site.yaml:1:12: error[C009]: unknown log_level 'warn1ng'
         1 | log_level: warn1ng
           |            ^
        hint: did you mean 'warning'?
        1 error found
        """)
    }

    /// F001 says why a file cannot be read (errno), not only that it cannot.
    @Test func anUnreadableFileNamesTheSystemsReason() throws {
        let dir = Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        for (path, reason) in [("\(dir)/missing.yaml", "No such file or directory"), (dir, "Is a directory")] {
            do {
                _ = try Site.load(rules: Fixtures.pack, config: path)
                Issue.record("\(path) loaded")
            } catch {
                #expect(error.diagnostics.map(\.code) == [.unreadableFile])
                #expect(error.description.contains("error[F001]: cannot read '\(path)': \(reason)"), "\(error)")
            }
        }
    }

    @Test func unknownKeyUnderABroker() {
        let (text, _) = Fixtures.load("""
        brokers:
          internal:
            host: 127.0.0.1
            prot: 11883
        """)
        #expect(text == """
        site.yaml:4:5: error[C005]: unknown key 'prot' in broker 'internal'
         4 |     prot: 11883
           |     ^
        hint: did you mean 'port'?
        1 error found
        """)
    }

    @Test func badJournalFsync() {
        let (text, _) = Fixtures.load("""
        proxy:
          journal_fsync: intervall
        """)
        #expect(text == """
        site.yaml:2:18: error[C009]: unknown journal_fsync 'intervall'
         2 |   journal_fsync: intervall
           |                  ^
        hint: did you mean 'interval'?
        1 error found
        """)
    }

    @Test func journalTooSmallAndZeroInterval() {
        let (text, _) = Fixtures.load("""
        proxy:
          journal_max_bytes: 65536
          journal_fsync: sometimes
          journal_fsync_interval_ms: 0
        """)
        #expect(text == """
        site.yaml:2:22: error[C009]: 'journal_max_bytes' must be at least 1048576 (1 MiB)
         2 |   journal_max_bytes: 65536
           |                      ^
        hint: the journal holds the backlog while the central broker is away; the default is 1073741824 (1 GiB)
        site.yaml:3:18: error[C009]: unknown journal_fsync 'sometimes'
         3 |   journal_fsync: sometimes
           |                  ^
        hint: use never, interval, always
        site.yaml:4:30: error[C009]: the value must be greater than 0
         4 |   journal_fsync_interval_ms: 0
           |                              ^
        3 errors found
        """)
    }

    @Test func journalKeysAreRead() throws {
        let (text, settings) = Fixtures.load("""
        proxy:
          status_topic: site/proxy-status
          journal_max_bytes: 1048576
          journal_fsync: always
          journal_fsync_interval_ms: 250
        """)
        #expect(text == "no errors")
        let proxy = try #require(settings?.proxy)
        #expect(proxy.journalMaxBytes == 1_048_576)
        #expect(proxy.journalFsync == .always)
        let (_, interval) = Fixtures.load("proxy: { journal_fsync_interval_ms: 250 }\n")
        #expect(interval?.proxy.journalFsync == .interval(milliseconds: 250))
        let (_, never) = Fixtures.load("proxy: { journal_fsync: never }\n")
        #expect(never?.proxy.journalFsync == .never)
    }

    /// `max_meters`: the default is one instance of the capacity model; lint refuses a bound below 1.
    @Test func maxMetersIsCheckedAndDefaults() throws {
        let (text, _) = Fixtures.load("""
        proxy:
          max_meters: 0
        """)
        #expect(text == """
        site.yaml:2:15: error[C009]: 'max_meters' must be at least 1
         2 |   max_meters: 0
           |               ^
        hint: the most meters the proxy keeps state for (about 1 KiB each); the default is 250000
        1 error found
        """)
        let (ok, settings) = Fixtures.load("""
        proxy:
          max_meters: 5000
        """)
        #expect(ok == "no errors")
        #expect(settings?.proxy.maxMeters == 5000)
        #expect(Fixtures.load("proxy: { status_interval_s: 5 }").1?.proxy.maxMeters == 250_000)
    }

    @Test func outboxLimitIsAWarningAndIgnored() throws {
        let (text, settings) = Fixtures.load("""
        proxy:
          status_interval_s: 30
          outbox_limit: 20
        """)
        #expect(text == """
        site.yaml:3:3: warning[C004]: 'outbox_limit' is deprecated and ignored
         3 |   outbox_limit: 20
           |   ^
        hint: the proxy keeps its backlog in a disk journal bounded by journal_max_bytes; remove outbox_limit
        0 errors, 1 warning found
        """)
        #expect(settings?.proxy.statusIntervalSeconds == 30)
    }

    /// The engine checks the keys of the sections both targets read and
    /// suggests among all of them; a wrong shape is reported once.
    @Test func sharedSectionsAreCheckedOnce() {
        let (text, _) = Fixtures.load("""
        broker: {}
        proxy:
          status_intervall_s: 30
        config_sender: 5
        """)
        #expect(text == """
        site.yaml:1:1: error[C005]: unknown key 'broker' in the site config
         1 | broker: {}
           | ^
        hint: did you mean 'brokers'?
        site.yaml:3:3: error[C005]: unknown key 'status_intervall_s' in 'proxy'
         3 |   status_intervall_s: 30
           |   ^
        hint: did you mean 'status_interval_s'?
        site.yaml:4:16: error[C007]: 'config_sender' must be a mapping, not a scalar
         4 | config_sender: 5
           |                ^
        3 errors found
        """)
    }

    @Test func configSenderTimers() throws {
        let (text, settings) = Fixtures.load("""
        config_sender:
          status_topic: site/sender-status
          reply_timeout_s: 2.5
          retries: 0
          periodic_pass_s: 60
        """)
        #expect(text == "no errors")
        let sender = try #require(settings?.configSender)
        #expect(sender.replyTimeoutSeconds == 2.5)
        #expect(sender.retries == 0)
        #expect(sender.periodicPassSeconds == 60)
    }
}

// MARK: Discovery on the internal broker

extension SiteDiagnosticsTests {
    @Test func discoveryKeysDefaultToBothCopiesAndTheCentralBroker() throws {
        let site = try Site.load(rules: Fixtures.pack, config: Fixtures.config)
        #expect(site.settings.proxy.discoveryOnInternal)
        #expect(site.settings.configSender.discoveryFrom == .central)
    }

    @Test func discoveryKeysAreRead() throws {
        let (text, settings) = Fixtures.load("""
        proxy:
          discovery_on_internal: true
        config_sender:
          discovery_from: internal
        """)
        #expect(text == "no errors")
        #expect(settings?.proxy.discoveryOnInternal == true)
        #expect(settings?.configSender.discoveryFrom == .internal)
        let (_, off) = Fixtures.load("""
        proxy:
          discovery_on_internal: false
        """)
        #expect(off?.proxy.discoveryOnInternal == false)
        #expect(off?.configSender.discoveryFrom == .central)
    }

    @Test func badDiscoveryKeys() {
        let (text, _) = Fixtures.load("""
        proxy:
          discovery_on_internal: yes please
        config_sender:
          discovery_from: centrall
        """)
        #expect(text == """
        site.yaml:2:26: error[C007]: 'discovery_on_internal' must be true or false
         2 |   discovery_on_internal: yes please
           |                          ^
        hint: found 'yes please'
        site.yaml:4:19: error[C009]: unknown discovery_from 'centrall'
         4 |   discovery_from: centrall
           |                   ^
        hint: did you mean 'central'?
        2 errors found
        """)
    }

    @Test func discoveryFromInternalNeedsTheProxysCopy() {
        let (text, _) = Fixtures.load("""
        proxy:
          discovery_on_internal: false
        config_sender:
          discovery_from: internal
        """)
        #expect(text == """
        site.yaml:4:19: error[C009]: 'discovery_from: internal' reads a copy that 'proxy.discovery_on_internal: false' turns off
         4 |   discovery_from: internal
           |                   ^
        hint: set proxy.discovery_on_internal: true, or read discovery from central
        1 error found
        """)
    }
}
