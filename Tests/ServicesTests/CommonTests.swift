import Foundation
import Glibc
import MQTT
import RuleEngine
@testable import Services
import Testing

@Suite struct LogTests {
    @Test func logfmtQuotesOnlyWhatNeedsIt() {
        #expect(Log.format(.info, "started", [("url", "mqtt://h:1"), ("n", "3")]) == "level=info msg=started url=mqtt://h:1 n=3")
        #expect(Log.quoted("dropped input") == #""dropped input""#)
        #expect(Log.quoted("a=b") == #""a=b""#)
        #expect(Log.quoted("") == #""""#)
        // A payload can forge neither a field nor a line.
        #expect(Log.quoted("x\" level=error\nmsg=\u{1}") == #""x\" level=error\nmsg=\u0001""#)
    }

    @Test func levelFilterAndRateLimit() throws {
        var fds: [Int32] = [0, 0]
        #expect(pipe(&fds) == 0)
        defer { close(fds[0]) }
        let log = Log(level: .info, fd: fds[1])
        log.debug("hidden")
        for i in 0..<8 { log.limited(.warning, key: "k", "bad", ["i": String(i)], burst: 3, window: 0.2) }
        usleep(250_000)
        log.limited(.warning, key: "k", "bad", ["i": "8"], burst: 3, window: 0.2)
        close(fds[1])
        var bytes: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = read(fds[0], &buffer, buffer.count)
            if n <= 0 { break }
            bytes += buffer[0..<n]
        }
        #expect(String(decoding: bytes, as: UTF8.self).split(separator: "\n") == [
            "level=warning msg=bad i=0", "level=warning msg=bad i=1", "level=warning msg=bad i=2",
            "level=warning msg=bad i=8 suppressed=5",
        ])
    }
}

@Suite struct PasswordTests {
    let directory: URL

    init() throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("password-test-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        try "from-credential\n".write(to: directory.appendingPathComponent("internal-password"), atomically: true, encoding: .utf8)
        try "from-file\r\nsecond line\n".write(to: directory.appendingPathComponent("file"), atomically: true, encoding: .utf8)
    }

    func client(credential: String? = nil, file: String? = nil, env: String? = nil) -> ClientConfig {
        var c = ClientConfig()
        c.passwordCredential = credential
        c.passwordFile = file
        c.passwordEnv = env
        return c
    }

    @Test func credentialThenFileThenEnvironment() throws {
        let env = ["CREDENTIALS_DIRECTORY": directory.path, "PW": "from-env"]
        let file = directory.appendingPathComponent("file").path
        #expect(try client(credential: "internal-password", file: file, env: "PW").resolvePassword(environment: env) == "from-credential")
        // A named credential that systemd did not provide falls through.
        #expect(try client(credential: "missing", file: file, env: "PW").resolvePassword(environment: env) == "from-file")
        #expect(try client(credential: "internal-password", env: "PW").resolvePassword(environment: ["PW": "from-env"]) == "from-env")
        #expect(try client(env: "UNSET").resolvePassword(environment: env) == nil)
        #expect(try client().resolvePassword(environment: env) == nil)
    }

    @Test func missingFileFallsThroughUnreadableFileIsAnError() throws {
        #expect(try client(file: directory.appendingPathComponent("nope").path, env: "PW").resolvePassword(environment: ["PW": "e"]) == "e")
        // A directory exists but cannot be read as a file.
        #expect(throws: ServiceError.self) {
            try client(file: directory.path).resolvePassword(environment: [:])
        }
    }
}

@Suite struct BrokerSettingsTests {
    /// A site config read the way the services read it.
    func site() throws -> SiteConfig {
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("broker-settings-\(UUID().uuidString.prefix(8)).yaml")
        defer { try? FileManager.default.removeItem(at: file) }
        try """
            brokers:
              central:
                host: broker.lan
                port: 8883
                protocol: 3.1.1
                tls: { ca_file: ca.pem }
                clients:
                  proxy: { client_id: proxy-a, username: proxy, password_env: PW }
            """.write(to: file, atomically: true, encoding: .utf8)
        let (site, report) = Compiler.loadSiteConfig(at: file.path)
        #expect(!report.hasErrors, "\(report)")
        return try #require(site)
    }

    @Test func fromConfig() throws {
        let s = try BrokerSettings(site: try site(), broker: "central", client: "proxy", override: nil,
                                   defaultClientID: "x", cleanSession: false, environment: ["PW": "secret"])
        #expect(s.endpoint == MQTTEndpoint(host: "broker.lan", port: 8883, tls: true))
        #expect(s.options.clientID == "proxy-a")
        #expect(s.options.protocolVersion == .v311)
        #expect(s.options.username == "proxy")
        #expect(s.options.password == "secret")
        #expect(s.options.tls?.caFile == "ca.pem")
        #expect(s.options.cleanSession == false)
    }

    @Test func overrideReplacesHostPortAndTLS() throws {
        let plain = try BrokerSettings(site: try site(), broker: "central", client: "proxy", override: "mqtt://127.0.0.1:1884",
                                       defaultClientID: "x", cleanSession: true, environment: [:])
        #expect(plain.endpoint == MQTTEndpoint(host: "127.0.0.1", port: 1884, tls: false))
        #expect(plain.options.tls == nil)
        let secure = try BrokerSettings(site: try site(), broker: "central", client: "proxy", override: "mqtts://other",
                                        defaultClientID: "x", cleanSession: true, environment: [:])
        #expect(secure.endpoint == MQTTEndpoint(host: "other", port: 8883, tls: true))
        #expect(secure.options.tls?.caFile == "ca.pem")
        // Defaults for a broker the config does not describe.
        let internalBroker = try BrokerSettings(site: try site(), broker: "internal", client: "proxy", override: nil,
                                          defaultClientID: "kpm33b-proxy", cleanSession: false, environment: [:])
        #expect(internalBroker.options.clientID == "kpm33b-proxy")
        #expect(internalBroker.options.protocolVersion == .v5)
        #expect(throws: ServiceError.self) {
            try BrokerSettings(site: try site(), broker: "central", client: "proxy", override: "mqtt://user:pw@h",
                               defaultClientID: "x", cleanSession: true, environment: [:])
        }
    }
}

@Suite struct SmallPartsTests {
    @Test func instantNowCarriesTheLocalOffset() {
        let now = Instant.now()
        #expect(abs(now.epochMillis - Int64(Date().timeIntervalSince1970 * 1000)) < 1000)
        #expect(Instant(epochMillis: 1_768_235_940_000).iso8601 == "2026-01-12T16:39:00Z")
    }
}
