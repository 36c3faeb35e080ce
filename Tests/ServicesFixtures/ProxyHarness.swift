import Foundation
import Glibc
import JSON
import MQTT
import RuleEngine
import TestSupport

/// Two real brokers, a site config pointing at them, and the built
/// `kpm33b-proxy` binary run as a child process — what an operator runs.
final class ProxyHarness: @unchecked Sendable {
    /// The repository root, from this file's place in it.
    static let root = URL(fileURLWithPath: Repository.root)
    static let packDirectory = root.appendingPathComponent("rules/kpm33b")

    /// The proxy binary in the build products directory next to the test bundle.
    static let binary: String? = {
        let products = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
        let candidates = [
            products.appendingPathComponent("kpm33b-proxy"),
            // macOS: the bundle's executable sits in X.xctest/Contents/MacOS.
            products.deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
                .appendingPathComponent("kpm33b-proxy"),
            root.appendingPathComponent(".build/debug/kpm33b-proxy"),
        ]
        return candidates.map(\.path).first { FileManager.default.isExecutableFile(atPath: $0) }
    }()

    let internalBroker: TestBroker
    let centralBroker: TestBroker
    let directory: URL
    let clientID = "kpm33b-proxy-\(UUID().uuidString.prefix(6))"
    var rules: String
    var configFile: String { directory.appendingPathComponent("config.yaml").path }
    var logFile: String { directory.appendingPathComponent("proxy.log").path }
    /// The proxy's --state-dir (its journal); it outlives a killed proxy.
    var stateDirectory: String { directory.appendingPathComponent("state").path }
    private(set) var proxy: ChildProcess?
    private var meter: TestClient?

    init(central: TestBroker.Configuration = .init(), groups: [String] = [], maxPayloadBytes: Int = 4096,
         journalMaxBytes: Int? = nil, copyRules: Bool = false) throws {
        // The internal broker logs subscriptions: that is how a test knows the proxy listens.
        internalBroker = try TestBroker(TestBroker.Configuration(extraLines: ["log_type subscribe"]))
        centralBroker = try TestBroker(central)
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("proxy-test-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        rules = Self.packDirectory.path
        if copyRules {
            let copy = directory.appendingPathComponent("rules")
            try FileManager.default.createDirectory(at: copy, withIntermediateDirectories: true)
            try FileManager.default.copyItem(at: Self.packDirectory.appendingPathComponent("pack.yaml"),
                                             to: copy.appendingPathComponent("pack.yaml"))
            rules = copy.path
        }
        try writeConfig(groups: groups, maxPayloadBytes: maxPayloadBytes, journalMaxBytes: journalMaxBytes)
    }

    deinit {
        proxy?.kill()
        meter?.stop()
        internalBroker.stop()
        centralBroker.stop()
        try? FileManager.default.removeItem(at: directory)
    }

    /// The site config of every test: both brokers, a fast status, a small
    /// payload limit and one excluded meter.
    func writeConfig(groups: [String] = [], maxPayloadBytes: Int = 4096, journalMaxBytes: Int? = nil, centralPort: Int? = nil,
                     exclude: [String] = ["33B1225950030"], centralProtocol: String = "3.1.1") throws {
        let text = """
            root_topic: kpm33b
            brokers:
              internal:
                host: 127.0.0.1
                port: \(internalBroker.port)
                protocol: 5
                keepalive_s: 30
                clients:
                  proxy: { client_id: \(clientID) }
              central:
                host: 127.0.0.1
                port: \(centralPort ?? centralBroker.port)
                protocol: \(centralProtocol)
                clients:
                  proxy: { client_id: \(clientID) }
            meters:
              defaults:
                groups: [\(groups.joined(separator: ", "))]
                settings: { upload_interval_seconds: 60, upload_interval_minutes: 5 }
            exclude: [\(exclude.map { "\"\($0)\"" }.joined(separator: ", "))]
            homeassistant: { enabled: true, discovery_prefix: homeassistant, expire_after_factor: 3 }
            proxy:
              status_interval_s: 1\(journalMaxBytes.map { "\n  journal_max_bytes: \($0)" } ?? "")
              max_payload_bytes: \(maxPayloadBytes)
              clock_skew_threshold_s: 300

            """
        try text.write(toFile: configFile, atomically: true, encoding: .utf8)
    }

    // MARK: The proxy process

    /// Starts the proxy and, unless `waitForSubscriptions` is false, waits
    /// until the internal broker has logged its subscriptions.
    /// `logLevel` nil: the site config's `log_level` decides; `output`: where
    /// its standard output goes instead of `logFile`.
    func startProxy(arguments extra: [String] = [], waitForSubscriptions: Bool = true, logLevel: String? = "debug",
                    environment: [String: String?] = [:], output: String? = nil) throws {
        guard let binary = Self.binary else {
            throw TestBroker.Failure.setup("kpm33b-proxy is not built (swift build --product kpm33b-proxy)")
        }
        let before = internalBroker.log.components(separatedBy: "\(clientID) 1 MQTT_ENY_NOW").count
        proxy = try ChildProcess(executable: binary,
                                 arguments: ["--rules", rules, "--config", configFile, "--state-dir", stateDirectory]
                                     + (logLevel.map { ["--log-level", $0] } ?? []) + extra,
                                 environment: environment, outputFile: output ?? logFile)
        guard waitForSubscriptions else { return }
        let deadline = Date(timeIntervalSinceNow: 10)
        while Date() < deadline {
            if internalBroker.log.components(separatedBy: "\(clientID) 1 MQTT_ENY_NOW").count > before { return }
            if proxy?.isRunning != true { break }
            usleep(10_000)
        }
        throw TestBroker.Failure.setup("the proxy did not subscribe:\n\(proxyLog)\n--- internal broker:\n\(internalBroker.log)")
    }

    var proxyLog: String { (try? String(contentsOfFile: logFile, encoding: .utf8)) ?? "" }

    /// Waits until the proxy's log contains `text` `count` times.
    func waitForLog(_ text: String, count: Int = 1, timeout: Double = 5) -> Bool {
        let deadline = Date(timeIntervalSinceNow: timeout)
        repeat {
            if proxyLog.components(separatedBy: text).count > count { return true }
            usleep(10_000)
        } while Date() < deadline
        return false
    }

    func signalProxy(_ signal: Int32) { proxy?.signal(signal) }

    /// SIGKILL: the proxy vanishes without a DISCONNECT.
    func killProxy() {
        proxy?.kill()
        proxy = nil
    }

    // MARK: A meter

    /// Publishes to the internal broker as a meter would (QoS 1) and waits until the broker has them all.
    func publish(_ messages: [(topic: String, payload: [UInt8])]) throws {
        if meter == nil {
            let connection = try TestClient(endpoint: internalBroker.endpoint,
                                                options: MQTTOptions(clientID: "meter-\(UUID().uuidString.prefix(6))"))
            try connection.start()
            guard connection.waitUntilConnected(timeout: 5) else { throw MQTTError.noConnection }
            meter = connection
        }
        for m in messages { try meter!.publish(topic: m.topic, payload: m.payload, qos: 1, retain: false) }
        let deadline = Date(timeIntervalSinceNow: 10)
        while meter!.unacknowledgedCount > 0 && Date() < deadline { usleep(2_000) }
    }

    func publish(_ topic: String, _ payload: [UInt8]) throws { try publish([(topic, payload)]) }
    func publish(_ topic: String, _ text: String) throws { try publish([(topic, Array(text.utf8))]) }

    // MARK: Sample data

    static func sample(_ name: String) throws -> String {
        let file = packDirectory.appendingPathComponent("samples/\(name).json")
        return try String(contentsOf: file, encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// The real MQTT_RT_DATA sample with another meter clock (`20260112` + HHmmss from 16:00:00 + `second`).
    static func rtData(second: Int, id: String = "33B1225950027") throws -> String {
        try sample("MQTT_RT_DATA")
            .replacingOccurrences(of: #""time":"20260112163900""#, with: #""time":"\#(clock(second))""#)
            .replacingOccurrences(of: #""id":"33B1225950027""#, with: #""id":"\#(id)""#)
    }

    static func clock(_ second: Int) -> String {
        let s = 16 * 3600 + second
        func two(_ v: Int) -> String { v < 10 ? "0\(v)" : String(v) }
        return "20260112\(two(s / 3600 % 24))\(two(s / 60 % 60))\(two(s % 60))"
    }

    /// The clean message the proxy makes of `rtData(second:)` with no groups.
    static func cleanRTData(second: Int, id: String = "33B1225950027") -> String {
        #"{"id":"\#(id)","time":"\#(clock(second))","active_power":6.6905}"#
    }
}

extension MQTTMessage {
    var line: String { "\(topic) \(payloadText)" }
    var json: JSONValue? { try? JSONValue.parse(payload) }
}

extension TestSubscriber {
    /// The data messages received (not status, discovery or Home Assistant), as `TOPIC PAYLOAD`.
    var dataLines: [String] {
        messages.filter { $0.isData }.map(\.line)
    }

    /// The data messages without repeats (QoS 1 is at least once: a broker
    /// restart may deliver a message again), in order of first arrival.
    var uniqueDataLines: [String] {
        var seen = Set<String>()
        return dataLines.filter { seen.insert($0).inserted }
    }

    /// Waits until `count` data messages arrived; returns them.
    func waitForData(count: Int, timeout: Double = 10) -> [String] {
        let deadline = Date(timeIntervalSinceNow: timeout)
        while dataLines.count < count && Date() < deadline {
            _ = waitFor(count: messages.count + 1, timeout: 0.05)
        }
        return dataLines
    }

    /// Waits until `count` different data messages arrived; returns them in order of first arrival.
    func waitForUniqueData(count: Int, timeout: Double = 20) -> [String] {
        let deadline = Date(timeIntervalSinceNow: timeout)
        while uniqueDataLines.count < count && Date() < deadline {
            _ = waitFor(count: messages.count + 1, timeout: 0.05)
        }
        return uniqueDataLines
    }

    /// The first status message satisfying `predicate`.
    func waitForStatus(timeout: Double = 10, where predicate: (JSONValue) -> Bool) -> JSONValue? {
        waitFor(timeout: timeout) { $0.topic == "kpm33b/status" && $0.json.map(predicate) == true }?.json
    }
}

extension MQTTMessage {
    var isData: Bool {
        !topic.hasPrefix("homeassistant/") && !topic.hasPrefix("kpm33b/discovery/") && !topic.hasPrefix("kpm33b/proxy/") && topic != "kpm33b/status" && !topic.hasPrefix("kpm33b/status/")
    }
}
