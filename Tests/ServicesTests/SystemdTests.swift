import Foundation
import Glibc
import MQTT
@testable import Services
import Testing
import TestSupport
@testable import ServicesFixtures

/// The services under systemd and journald: the notify protocol, syslog
/// priorities on log lines, `log_level`, connection errors that say why, and
/// a log that never stops the event loop.
@Suite(.serialized) struct SystemdTests {
    /// Every line of a log, with the priority its prefix gives and its level field.
    static func priorities(_ log: String) -> [(priority: Int?, level: Substring?, line: Substring)] {
        log.split(separator: "\n").map { line in
            var priority: Int?
            if line.hasPrefix("<"), let end = line.firstIndex(of: ">") { priority = Int(line[line.index(after: line.startIndex)..<end]) }
            let level = line.split(separator: " ").first { $0.contains("level=") }.map { $0.split(separator: "=").last ?? "" }
            return (priority, level, line)
        }
    }

    static let expected: [Substring: Int] = ["error": 3, "warning": 4, "info": 6, "debug": 7]

    @Test func logLinesCarryTheirSyslogPriorityAndLogLevelIsReloaded() throws {
        let h = try ProxyHarness()
        try (String(contentsOfFile: h.configFile, encoding: .utf8) + "log_level: warning\n")
            .write(toFile: h.configFile, atomically: true, encoding: .utf8)
        try h.startProxy(logLevel: nil)
        try h.publish("MQTT_RT_DATA", "{not json")
        #expect(h.waitForLog("msg=input_dropped"), "\(h.proxyLog)")
        try h.publish("MQTT_RT_DATA", try ProxyHarness.rtData(second: 1))
        usleep(300_000)
        var lines = Self.priorities(h.proxyLog)
        #expect(!lines.isEmpty)
        for line in lines {
            #expect(line.priority != nil && line.priority == line.level.flatMap { Self.expected[$0] }, "\(line.line)")
        }
        #expect(lines.allSatisfy { $0.priority! <= 4 }, "log_level: warning lets no info line through")
        #expect(lines.contains { $0.line.hasPrefix("<4>level=warning msg=input_dropped ") })

        // Reloaded: debug, and the next new meter is logged once at info.
        try (String(contentsOfFile: h.configFile, encoding: .utf8).replacingOccurrences(of: "log_level: warning", with: "log_level: debug"))
            .write(toFile: h.configFile, atomically: true, encoding: .utf8)
        h.signalProxy(SIGHUP)
        #expect(h.waitForLog("msg=rules_reloaded"), "\(h.proxyLog)")
        try h.publish("MQTT_RT_DATA", try ProxyHarness.rtData(second: 2, id: "33B1225950028"))
        try h.publish("MQTT_RT_DATA", try ProxyHarness.rtData(second: 3, id: "33B1225950028"))
        #expect(h.waitForLog("<6>level=info msg=meter_heard meter=33B1225950028 "), "\(h.proxyLog)")
        usleep(300_000)
        #expect(h.proxyLog.components(separatedBy: "msg=meter_heard meter=33B1225950028 ").count == 2, "once per meter")
        lines = Self.priorities(h.proxyLog)
        for line in lines {
            #expect(line.priority != nil && line.priority == line.level.flatMap { Self.expected[$0] }, "\(line.line)")
        }
    }

    // MARK: The notify protocol

    @Test func proxyNotifiesReadyWatchdogStatusAndStopping() throws {
        let h = try ProxyHarness()
        let notify = try NotifySocket(directory: h.directory)
        try h.startProxy(environment: ["NOTIFY_SOCKET": notify.path, "WATCHDOG_USEC": "1000000"])
        let ready = try #require(notify.waitFor(timeout: 10) { $0.contains("READY=1") }, "\(notify.messages)\n\(h.proxyLog)")
        #expect(ready.contains("STATUS=0 meters, 0 forwarded/min, journal 0 messages"), "\(ready)")
        // Every 0.5 s (half of WATCHDOG_USEC), from the event loop.
        #expect(notify.waitFor(timeout: 5) { _ in notify.messages.count { $0 == "WATCHDOG=1" } >= 4 } != nil, "\(notify.messages)")
        try h.publish("MQTT_RT_DATA", try ProxyHarness.rtData(second: 1))
        #expect(notify.waitFor(timeout: 20) { $0.hasPrefix("STATUS=1 meters,") } != nil, "\(notify.messages)")
        h.signalProxy(SIGTERM)
        #expect(notify.waitFor(timeout: 10) { $0.hasPrefix("STOPPING=1\nSTATUS=stopping") } != nil, "\(notify.messages)")
        h.proxy?.wait(timeout: 10)
        #expect(h.proxy?.exitStatus == 0)
    }

    @Test func configSenderNotifiesReadyWatchdogStatusAndStopping() throws {
        let directory = try senderTemporaryDirectory("notify")
        defer { try? FileManager.default.removeItem(at: directory) }
        let notify = try NotifySocket(directory: directory)
        let h = try SenderHarness(name: "notify", environment: ["NOTIFY_SOCKET": notify.path, "WATCHDOG_USEC": "1000000"])
        try h.start()
        let ready = try #require(notify.waitFor(timeout: 10) { $0.contains("READY=1") }, "\(notify.messages)\n\(h.log)")
        #expect(ready.contains("STATUS=0 meters, 0 configured, 0 commands pending"), "\(ready)")
        #expect(notify.waitFor(timeout: 5) { _ in notify.messages.count { $0 == "WATCHDOG=1" } >= 4 } != nil, "\(notify.messages)")
        #expect(h.stop() == 0)
        #expect(notify.waitFor(timeout: 1) { $0.hasPrefix("STOPPING=1\nSTATUS=stopping") } != nil, "\(notify.messages)")
    }

    /// Ready without the central broker (the proxy journals and retries), the
    /// reason in the status; an abstract socket name (`@…`) works too.
    @Test func readyWithAnUnreachableBrokerSaysWhyInTheStatus() throws {
        let h = try ProxyHarness()
        try h.writeConfig(centralPort: freePort())
        let name = "kpm33b-test-\(UUID().uuidString.prefix(8))"
        let notify = try NotifySocket(abstractName: name)
        try h.startProxy(environment: ["NOTIFY_SOCKET": "@" + name])
        #expect(notify.waitFor(timeout: 10) { $0.contains("READY=1") } != nil, "\(notify.messages)\n\(h.proxyLog)")
        let status = notify.waitFor(timeout: 10) { $0.contains("central broker: connection to mqtt://127.0.0.1:") }
        #expect(status?.contains("Connection refused") == true, "\(notify.messages)")
        #expect(!notify.messages.contains { $0.contains("WATCHDOG=1") }, "no WATCHDOG_USEC, no watchdog")
    }

    // MARK: Connection errors

    /// A wrong port, a wrong password and a missing one each say what happened,
    /// with the broker, the user and where the password came from.
    @Test func aFailedConnectionNamesBrokerUserPasswordSourceAndCause() throws {
        // A port that does not speak MQTT (libmosquitto said "Success").
        let notMQTT = try NotMQTTServer()
        let h = try ProxyHarness(central: .init(users: ["kpm33b-proxy": "right"]))
        try h.writeConfig(centralPort: notMQTT.port)
        try h.startProxy()
        #expect(h.waitForLog("msg=cannot_connect broker=central"), "\(h.proxyLog)")
        var line = h.proxyLog.split(separator: "\n").first { $0.contains("msg=cannot_connect broker=central") } ?? ""
        #expect(line.contains("connection to mqtt://127.0.0.1:\(notMQTT.port)") && line.contains("is it an MQTT broker's port?"), "\(line)")
        #expect(!line.contains("Success"), "\(line)")
        h.killProxy()

        // The account, with a password from the environment: a wrong one, then none.
        let config = try String(contentsOfFile: h.configFile, encoding: .utf8)
        let central = "port: \(h.centralBroker.port)\n    protocol: 3.1.1\n    clients:\n      proxy: { client_id: \(h.clientID)"
        func account(_ extra: String) throws {
            try config.replacingOccurrences(of: "port: \(notMQTT.port)", with: "port: \(h.centralBroker.port)")
                .replacingOccurrences(of: central, with: central + ", username: kpm33b-proxy" + extra)
                .write(toFile: h.configFile, atomically: true, encoding: .utf8)
            try FileManager.default.removeItem(atPath: h.logFile)
        }
        try account(", password_env: KPM33B_TEST_PASSWORD")
        try h.startProxy(environment: ["KPM33B_TEST_PASSWORD": "wrong"])
        #expect(h.waitForLog("msg=cannot_connect broker=central"), "\(h.proxyLog)")
        line = h.proxyLog.split(separator: "\n").first { $0.contains("msg=cannot_connect broker=central") } ?? ""
        #expect(line.contains("refused by the broker: Connection Refused: not authorised."), "\(line)")
        #expect(line.contains("user 'kpm33b-proxy', password from environment variable KPM33B_TEST_PASSWORD"), "\(line)")
        h.killProxy()

        try account("")
        try h.startProxy()
        #expect(h.waitForLog("msg=cannot_connect broker=central"), "\(h.proxyLog)")
        line = h.proxyLog.split(separator: "\n").first { $0.contains("msg=cannot_connect broker=central") } ?? ""
        #expect(line.contains("user 'kpm33b-proxy', no password"), "\(line)")
        h.killProxy()

        // And the right one connects.
        try account(", password_env: KPM33B_TEST_PASSWORD")
        try h.startProxy(environment: ["KPM33B_TEST_PASSWORD": "right"])
        #expect(h.waitForLog("msg=connected broker=central"), "\(h.proxyLog)")
    }

    // MARK: A stalled standard output

    /// The proxy's standard output is a pipe nobody reads: it keeps forwarding,
    /// and says how many lines it dropped once the pipe is read again.
    @Test func aStalledStandardOutputDoesNotStopTheProxy() throws {
        let h = try ProxyHarness()
        let fifo = h.directory.appendingPathComponent("stdout.fifo").path
        #expect(mkfifo(fifo, 0o600) == 0)
        // Open for reading (never read): the proxy's open for writing succeeds.
        let reader = open(fifo, O_RDONLY | O_NONBLOCK | O_CLOEXEC)
        #expect(reader >= 0)
        defer { close(reader) }
        _ = fcntl(reader, 1031, 4096)  // F_SETPIPE_SZ (not exported to Swift): the smallest pipe, one page
        let subscriber = try TestSubscriber(broker: h.centralBroker, filters: ["kpm33b/+/seconds", "kpm33b/status"])
        try h.startProxy(output: fifo)
        // Each new meter logs a line: far more than the pipe and the log's buffer hold.
        let ids = (0..<1_200).map { "33B12259\(String(60_000 + $0))" }
        try h.publish(ids.map { ("MQTT_RT_DATA", Array(try! ProxyHarness.rtData(second: 1, id: $0).utf8)) })
        let data = subscriber.waitForData(count: ids.count, timeout: 60)
        #expect(data.count == ids.count, "forwarded \(data.count) of \(ids.count) with a stalled standard output")
        // The status counts what was dropped.
        #expect(subscriber.waitForStatus { ($0["log_lines_dropped"]?.intValue ?? 0) > 0 } != nil)

        // Read the pipe: the next line is preceded by the count of those dropped.
        var text = ""
        func drain() {
            var buffer = [UInt8](repeating: 0, count: 65_536)
            while true {
                let n = read(reader, &buffer, buffer.count)
                if n <= 0 { break }
                text += String(decoding: buffer[0..<n], as: UTF8.self)
            }
        }
        drain()
        try h.publish("MQTT_RT_DATA", try ProxyHarness.rtData(second: 2, id: "33B1225949999"))
        let deadline = Date(timeIntervalSinceNow: 10)
        while !text.contains("msg=meter_heard meter=33B1225949999"), Date() < deadline {
            usleep(50_000)
            drain()
        }
        let reports = text.split(separator: "\n").filter { $0.contains("msg=log_lines_dropped") }
        #expect(!reports.isEmpty && reports.allSatisfy { $0.hasPrefix("<4>level=warning msg=log_lines_dropped count=") },
                "\(text.suffix(2000))")
        let heard = ids.count { text.contains("msg=meter_heard meter=\($0) ") }
        let dropped = reports.compactMap { $0.split(separator: " ").first { $0.hasPrefix("count=") }.flatMap { Int($0.dropFirst(6)) } }
            .reduce(0, +)
        #expect(dropped > 0 && heard + dropped >= ids.count, "heard \(heard), dropped \(dropped)")
    }
}

@Suite struct SystemdNotifierTests {
    @Test func aPathAnAbstractNameAndNothing() throws {
        #expect(SystemdNotifier(environment: [:]) == nil)
        #expect(SystemdNotifier(environment: ["NOTIFY_SOCKET": "relative"]) == nil)
        let name = "kpm33b-unit-\(UUID().uuidString.prefix(8))"
        let socket = try NotifySocket(abstractName: name)
        let notifier = try #require(SystemdNotifier(environment: ["NOTIFY_SOCKET": "@" + name, "WATCHDOG_USEC": "30000000"]))
        #expect(notifier.watchdogInterval == 15)
        #expect(notifier.send([("STATUS", "two\nlines"), ("READY", "1")]))
        #expect(socket.waitFor(timeout: 2) { $0 == "STATUS=two lines\nREADY=1" } != nil, "\(socket.messages)")
        // Another process's watchdog is not ours.
        #expect(SystemdNotifier.watchdogInterval(["WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "1"]) == nil)
    }
}
