import Foundation
import Glibc
import MQTT
import RuleEngine
@testable import Services
import SiteSettings
import Testing
@testable import ServicesFixtures

@Suite struct LogTests {
    @Test func logfmtQuotesOnlyWhatNeedsIt() {
        #expect(Log.format(.info, "started", [("url", "mqtt://h:1"), ("n", "3")]) == "<6>level=info msg=started url=mqtt://h:1 n=3")
        #expect(Log.format(.error, "x", []) == "<3>level=error msg=x")
        #expect(Log.format(.debug, "x", []) == "<7>level=debug msg=x")
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
            "<4>level=warning msg=bad i=0", "<4>level=warning msg=bad i=1", "<4>level=warning msg=bad i=2",
            "<4>level=warning msg=bad i=8 suppressed=5",
        ])
    }

    /// The reader is gone (its end closed): every line is counted as
    /// dropped, at once, and nothing keeps trying.
    @Test func aClosedReaderCountsEveryLine() {
        var fds: [Int32] = [0, 0]
        #expect(pipe(&fds) == 0)
        close(fds[0])
        defer { close(fds[1]) }
        let log = Log(level: .info, fd: fds[1])
        for i in 0..<100 { log.info("line", ["i": String(i)]) }
        log.flush(timeout: 5)
        #expect(log.droppedLines == 100)
        #expect(log.bufferedBytes == 0)
    }

    /// Standard output is a pipe nobody reads: logging goes on at once, the
    /// lines that did not fit are counted, and once the pipe is read their
    /// count follows the lines that were kept.
    @Test func aStalledReaderNeitherBlocksNorLosesCount() throws {
        var fds: [Int32] = [0, 0]
        #expect(pipe(&fds) == 0)
        defer { close(fds[0]); close(fds[1]) }
        let log = Log(level: .info, fd: fds[1])
        let total = 5_000
        let done = DispatchSemaphore(value: 0)
        let started = Date()
        Thread {
            for i in 0..<total { log.info("line", ["i": String(i), "padding": String(repeating: "x", count: 80)]) }
            done.signal()
        }.start()
        let finished = done.wait(timeout: .now() + 5) == .success
        #expect(finished, "5,000 lines into a pipe nobody reads took more than 5 s")
        guard finished else {
            // Unblock the writer so that the test process can end.
            _ = fcntl(fds[0], F_SETFL, O_NONBLOCK)
            var sink = [UInt8](repeating: 0, count: 1 << 20)
            while read(fds[0], &sink, sink.count) > 0 {}
            return
        }
        #expect(Date().timeIntervalSince(started) < 5)
        #expect(log.droppedLines > 0)
        #expect(log.bufferedBytes <= Log.bufferLimit)

        // Read until the count of dropped lines arrives (written by the flusher).
        _ = fcntl(fds[0], F_SETFL, O_NONBLOCK)
        var text = ""
        var buffer = [UInt8](repeating: 0, count: 65_536)
        let deadline = Date(timeIntervalSinceNow: 10)
        while !text.contains("msg=log_lines_dropped"), Date() < deadline {
            let n = read(fds[0], &buffer, buffer.count)
            if n > 0 { text += String(decoding: buffer[0..<n], as: UTF8.self) } else { usleep(10_000) }
        }
        let lines = text.split(separator: "\n")
        let kept = lines.count { $0.hasPrefix("<6>level=info msg=line i=") }
        let report = lines.last { $0.contains("msg=log_lines_dropped") }
        #expect(report?.hasPrefix("<4>level=warning msg=log_lines_dropped count=\(log.droppedLines) ") == true, "\(report ?? "")")
        #expect(kept + log.droppedLines == total, "kept \(kept), dropped \(log.droppedLines)")
        // The kept lines are the first ones, in order, each whole.
        #expect(lines.prefix(kept).enumerated().allSatisfy { $0.element.hasPrefix("<6>level=info msg=line i=\($0.offset) ") })
    }
}

@Suite struct BrokerSettingsTests {
    /// The settings of a site config, read the way the services read them.
    func settings() throws -> ServiceSettings {
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
        var report = DiagnosticReport()
        let loaded = Site.loadSettings(at: file.path, into: &report)
        #expect(!report.hasErrors, "\(report)")
        return try #require(loaded).settings
    }

    @Test func fromConfig() throws {
        let s = try BrokerSettings(settings: try settings(), broker: "central", client: "proxy", override: nil,
                                   defaultClientID: "x", cleanSession: false, environment: ["PW": "secret"])
        #expect(s.endpoint == MQTTEndpoint(host: "broker.lan", port: 8883, tls: true))
        #expect(s.options.clientID == "proxy-a")
        #expect(s.options.protocolVersion == .v311)
        #expect(s.options.username == "proxy")
        #expect(s.options.password == "secret")
        #expect(s.options.tls?.caFile == "ca.pem")
        #expect(s.options.cleanSession == false)
    }

    /// The configured password source yields nothing: the service does not start.
    @Test func aMissingPasswordStopsTheStart() throws {
        let error = #expect(throws: ServiceError.self) {
            try BrokerSettings(settings: try settings(), broker: "central", client: "proxy", override: nil,
                               defaultClientID: "x", cleanSession: true, environment: [:])
        }
        #expect(error?.message == "broker 'central', client 'proxy': no password: the environment variable PW is not set (password_env)")
    }

    @Test func overrideReplacesHostPortAndTLS() throws {
        let plain = try BrokerSettings(settings: try settings(), broker: "central", client: "proxy", override: "mqtt://127.0.0.1:1884",
                                       defaultClientID: "x", cleanSession: true, environment: ["PW": "secret"])
        #expect(plain.endpoint == MQTTEndpoint(host: "127.0.0.1", port: 1884, tls: false))
        #expect(plain.options.tls == nil)
        let secure = try BrokerSettings(settings: try settings(), broker: "central", client: "proxy", override: "mqtts://other",
                                        defaultClientID: "x", cleanSession: true, environment: ["PW": "secret"])
        #expect(secure.endpoint == MQTTEndpoint(host: "other", port: 8883, tls: true))
        #expect(secure.options.tls?.caFile == "ca.pem")
        // Defaults for a broker the config does not describe.
        let internalBroker = try BrokerSettings(settings: try settings(), broker: "internal", client: "proxy", override: nil,
                                          defaultClientID: "kpm33b-proxy", cleanSession: false, environment: [:])
        #expect(internalBroker.options.clientID == "kpm33b-proxy")
        #expect(internalBroker.options.protocolVersion == .v5)
        #expect(throws: ServiceError.self) {
            try BrokerSettings(settings: try settings(), broker: "central", client: "proxy", override: "mqtt://user:pw@h",
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
