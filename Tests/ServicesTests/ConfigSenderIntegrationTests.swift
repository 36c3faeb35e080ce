import Foundation
import JSON
import MQTT
import Testing
import TestSupport
import Services
import SQLite
@testable import ServicesFixtures

// The config-sender executable on two real Mosquitto brokers (internal and
// central, free loopback ports), with meters that answer commands as
// docs/protocol.md says. Discovery messages are published by the tests (retained),
// so no proxy is needed. Short timeouts come from the test config.

/// Polls `condition` every 20 ms until it holds or `timeout` seconds passed.
@discardableResult
func senderEventually(timeout: Double = 10, _ condition: () throws -> Bool) rethrows -> Bool {
    let deadline = Date(timeIntervalSinceNow: timeout)
    while Date() < deadline {
        if try condition() { return true }
        usleep(20_000)
    }
    return try condition()
}

/// A built executable of this package next to the test bundle (`swift build --build-tests` builds them all).
func senderBuiltExecutable(_ name: String) throws -> String {
    let candidates = [
        URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent(name).path,
        Bundle.main.bundleURL.deletingLastPathComponent().appendingPathComponent(name).path,
        senderPackageRoot.appendingPathComponent(".build/debug/\(name)").path,
    ]
    guard let found = candidates.first(where: { FileManager.default.isExecutableFile(atPath: $0) }) else {
        throw TestBroker.Failure.setup("\(name) is not built (run swift build --build-tests)")
    }
    return found
}

func senderExecutable() throws -> String { try senderBuiltExecutable("config-sender") }

/// Simulated meters on the internal broker: they take commands on their own
/// topics and reply on the reply topics, as a KPM33B does. Per meter: answer
/// `01`, answer `02` to chosen commands, or stay silent.
final class FakeMeters: @unchecked Sendable {
    enum Behaviour: Sendable { case answer, silent, fail(commands: Set<String>, msg: String), delayed(Double) }
    struct Received: Sendable {
        var meter: String
        var topic: String
        var payload: JSONValue
        var at: Date
        var oprid: String { payload["oprid"]?.stringValue ?? "" }
        var command: String {
            if topic.hasPrefix("MQTT_SETTIME_") { return "set_clock" }
            return payload["Cmd"]?.stringValue == "0001" ? "set_upload_interval_minutes" : "set_upload_interval_seconds"
        }
    }

    let connection: TestClient
    let received = Recorder<Received>()
    private let lock = NSLock()
    private var behaviours: [String: Behaviour]

    init(broker: TestBroker, meters: [String: Behaviour], username: String? = nil, password: String? = nil) throws {
        behaviours = meters
        connection = try TestClient(endpoint: broker.endpoint, options: MQTTOptions(
            clientID: "fake-meters-\(UUID().uuidString.prefix(6))", username: username, password: password,
            reconnectMinSeconds: 0.1, reconnectMaxSeconds: 0.5))
        var byShort: [String: String] = [:]
        for id in meters.keys {
            let short = String(id.suffix(8))
            byShort[short] = id
            try connection.subscribe("MQTT_COMMOD_SET_\(short)", qos: 1)
            try connection.subscribe("MQTT_SETTIME_\(short)", qos: 1)
        }
        connection.onMessage = { [weak self, byShort] message in
            guard let self, let short = message.topic.split(separator: "_").last.map(String.init), let id = byShort[short],
                  let payload = try? JSONValue.parse(message.payload) else { return }
            let r = Received(meter: id, topic: message.topic, payload: payload, at: Date())
            self.received.append(r)
            self.respond(r)
        }
        try connection.start()
        guard connection.waitUntilSubscribed(timeout: 10) else { throw TestBroker.Failure.setup("fake meters did not subscribe") }
    }

    deinit { connection.stop() }

    func set(_ id: String, _ behaviour: Behaviour) { lock.withLock { behaviours[id] = behaviour } }

    func commands(for id: String) -> [Received] { received.values.filter { $0.meter == id } }

    private func respond(_ r: Received) {
        guard r.oprid.utf8.count == 32 else { return }  // a meter ignores any other length
        let behaviour = lock.withLock { behaviours[r.meter] ?? .answer }
        var code = "01", msg: String?
        switch behaviour {
        case .silent: return
        case .answer: break
        case .fail(let commands, let why): if commands.contains(r.command) { code = "02"; msg = why }
        case .delayed(let seconds):
            DispatchQueue.global().asyncAfter(deadline: .now() + seconds) { [self] in sendReply(to: r, code: "01", msg: nil) }
            return
        }
        sendReply(to: r, code: code, msg: msg)
    }

    private func sendReply(to r: Received, code: String, msg: String?) {
        var reply: JSONObject = ["id": .string(r.meter), "oprid": .string(r.oprid), "code": .string(code)]
        if let msg { reply["msg"] = .string(msg) }
        let topic = r.command == "set_clock" ? "MQTT_METER_TIME_REP" : "MQTT_COMMOD_SET_REP"
        _ = try? connection.publish(topic: topic, payload: JSONValue.object(reply).serialized(), qos: 1, retain: false)
    }
}

/// Two brokers, a config, a state directory and the config-sender process.
final class SenderHarness: @unchecked Sendable {
    let internalBroker: TestBroker
    let centralBroker: TestBroker
    let directory: URL
    var configFile: URL { directory.appendingPathComponent("config.yaml") }
    var stateDirectory: URL { directory.appendingPathComponent("state") }
    /// The JSON state file of earlier releases (imported once at start-up).
    var legacyStateFile: URL { stateDirectory.appendingPathComponent("config-sender-state.json") }
    var stateDatabase: URL { stateDirectory.appendingPathComponent("config-sender.db") }
    var logFile: URL { directory.appendingPathComponent("config-sender.log") }
    private(set) var process: ChildProcess?
    private let publisher: TestClient
    /// How config-sender logs in to the internal broker (YAML flow mapping).
    let internalClient: String
    /// How config-sender logs in to the central broker.
    let centralClient: String
    let environment: [String: String?]
    /// `--rules`: the KPM33B pack unless a test runs others (`<repo>/rules`: every pack).
    var rules = senderPackPath

    /// With `productionCentral`, the central broker runs its shipped production
    /// config and ACL (`TestBroker.Shipped`): config-sender logs in as
    /// `kpm33b-config`, and the discovery messages come from the proxy's account.
    init(name: String, internal: TestBroker.Configuration = .init(),
         internalClient: String = "{ client_id: test-config-sender }", environment: [String: String?] = [:],
         productionCentral: Bool = false) throws {
        self.internalClient = internalClient
        internalBroker = try TestBroker(`internal`)
        centralBroker = try TestBroker(productionCentral ? .init(shipped: .init(.central)) : .init())
        var environment = environment
        if productionCentral {
            centralClient = "{ client_id: test-config-sender, username: kpm33b-config, password_env: TEST_CENTRAL_CONFIG_PASSWORD }"
            environment["TEST_CENTRAL_CONFIG_PASSWORD"] = centralBroker.password("kpm33b-config")
        } else {
            centralClient = "{ client_id: test-config-sender }"
        }
        self.environment = environment
        directory = try senderTemporaryDirectory("sender-\(name)")
        publisher = try TestClient(endpoint: centralBroker.endpoint, options: MQTTOptions(
            clientID: "discovery-\(UUID().uuidString.prefix(6))",
            username: productionCentral ? "kpm33b-proxy" : nil,
            password: productionCentral ? centralBroker.password("kpm33b-proxy") : nil,
            reconnectMinSeconds: 0.1, reconnectMaxSeconds: 0.5))
        try publisher.start()
        guard publisher.waitUntilConnected(timeout: 10) else { throw TestBroker.Failure.setup("publisher did not connect") }
        try writeConfig()
    }

    deinit {
        process?.kill()
        publisher.stop()
        internalBroker.stop()
        centralBroker.stop()
        try? FileManager.default.removeItem(at: directory)
    }

    func writeConfig(perMeter: [String: Int] = [:], extra: String = "", timeout: Double = 1) throws {
        let text = senderConfigText(perMeter: perMeter, internalPort: internalBroker.port, centralPort: centralBroker.port,
                                    timeout: timeout, internalClient: internalClient, centralClient: centralClient) + extra
        // Written in place (not renamed) as an editor would; SIGHUP reloads it.
        try text.write(to: configFile, atomically: false, encoding: .utf8)
    }

    /// Publishes the retained discovery message of meter `id`, as the proxy does.
    func discover(_ id: String, clockOffset: Int? = nil) throws {
        var doc: JSONObject = ["id": .string(id), "manufacturer": "Compere", "model": "KPM33B", "pack": "kpm33b"]
        if let clockOffset { doc["clock_offset_s"] = .integer(Int64(clockOffset)) }
        try publisher.publish(topic: "kpm33b/discovery/\(id)", payload: JSONValue.object(doc).serialized(), qos: 1, retain: true)
    }

    /// Publishes a retained message on the central broker, as the proxy would.
    func publishRetained(topic: String, payload: [UInt8]) throws {
        try publisher.publish(topic: topic, payload: payload, qos: 1, retain: true)
    }

    func start() throws {
        let mark = "==== start\n"
        if let handle = FileHandle(forWritingAtPath: logFile.path) {
            handle.seekToEndOfFile()
            handle.write(Data(mark.utf8))
            handle.closeFile()
        } else {
            try mark.write(to: logFile, atomically: false, encoding: .utf8)
        }
        process = try ChildProcess(executable: try senderExecutable(), arguments: [
            "--rules", rules, "--config", configFile.path, "--state-dir", stateDirectory.path,
            "--log-level", "debug",
        ], environment: environment,
           outputFile: logFile.path)
    }

    /// SIGTERM and wait; returns the exit status.
    @discardableResult
    func stop(timeout: Double = 10) -> Int32? {
        guard let process else { return nil }
        process.signal(SIGTERM)
        process.wait(timeout: timeout)
        let status = process.exitStatus
        if status == nil { process.kill() }
        self.process = nil
        return status
    }

    func kill9() {
        process?.kill()
        process = nil
    }

    /// Everything logged so far, every run.
    var log: String { (try? String(contentsOf: logFile, encoding: .utf8)) ?? "" }
    /// Log lines of the current (last) run.
    var currentRunLog: [Substring] {
        let text = log
        let last = text.range(of: "==== start", options: .backwards).map { text[$0.lowerBound...] } ?? Substring(text)
        return last.split(separator: "\n")
    }

    func lines(_ msg: String, in lines: [Substring]? = nil) -> [Substring] {
        (lines ?? currentRunLog).filter { $0.contains("msg=\(msg) ") || $0.hasSuffix("msg=\(msg)") }
    }

    /// The state database as `sqlite3` would show it while the service runs.
    /// In the shape of the previous release's JSON state file.
    var state: JSONValue? { (try? ConfigStateStore.readRecords(path: stateDatabase.path)).map(legacyStateDocument) }

    func acknowledgedDate(_ id: String) -> String? { state?["meters"]?[id]?["acknowledged_date"]?.stringValue }
}

/// Meter `id`'s configuration state as `subscriber` last received it (`kpm33b/<id>/configuration`).
func senderConfiguration(_ id: String, in subscriber: TestSubscriber) -> MeterConfigurationState? {
    subscriber.messages.last { $0.topic == "kpm33b/\(id)/configuration" }.flatMap { MeterConfigurationState(payload: Array($0.payload)) }
}

func senderLocalDate(daysFromToday: Int = 0) -> String {
    let now = Date().addingTimeInterval(Double(daysFromToday) * 86400)
    var seconds = time_t(now.timeIntervalSince1970)
    var local = tm()
    localtime_r(&seconds, &local)
    return String(format: "%04d-%02d-%02d", Int(local.tm_year) + 1900, Int(local.tm_mon) + 1, Int(local.tm_mday))
}

@Suite(.serialized) struct ConfigSenderIntegrationTests {
    @Test func discoveryConfiguresMetersRestartSameDaySendsNothingNextDaySendsAgain() throws {
        let h = try SenderHarness(name: "daily")
        let meters = try FakeMeters(broker: h.internalBroker, meters: [senderMeterA: .answer, senderMeterB: .answer])
        let status = try TestSubscriber(broker: h.centralBroker, filters: ["kpm33b/config-sender/status", "kpm33b/+/configuration"])
        try h.discover(senderMeterA)
        try h.discover(senderMeterB)
        try h.start()

        try #require(senderEventually { h.acknowledgedDate(senderMeterA) != nil && h.acknowledgedDate(senderMeterB) != nil }, "\(h.log)")
        #expect(h.acknowledgedDate(senderMeterA) == senderLocalDate())
        for id in [senderMeterA, senderMeterB] {
            let got = meters.commands(for: id)
            #expect(got.map(\.command).sorted() == ["set_clock", "set_upload_interval_minutes", "set_upload_interval_seconds"])
            let short = String(id.suffix(8))
            for r in got {
                #expect(r.oprid.utf8.count == 32)
                switch r.command {
                case "set_upload_interval_seconds":
                    #expect(r.topic == "MQTT_COMMOD_SET_\(short)")
                    #expect(r.payload == .object(["oprid": .string(r.oprid), "Cmd": "0000", "value": "60", "types": "1"]))
                case "set_upload_interval_minutes":
                    #expect(r.topic == "MQTT_COMMOD_SET_\(short)")
                    #expect(r.payload == .object(["oprid": .string(r.oprid), "Cmd": "0001", "value": "5", "types": "1"]))
                default:
                    #expect(r.topic == "MQTT_SETTIME_\(short)")
                    let time = r.payload["time"]?.stringValue ?? ""
                    #expect(time.utf8.count == 14 && time.allSatisfy(\.isNumber))
                    #expect(time.hasPrefix(senderLocalDate().replacingOccurrences(of: "-", with: "")))
                }
            }
            let record = try #require(h.state?["meters"]?[id])
            #expect(record["settings"]?["upload_interval_seconds"]?.intValue == 60)
            for name in ["set_clock", "set_upload_interval_minutes", "set_upload_interval_seconds"] {
                #expect(record["commands"]?[name]?["result"]?.stringValue == "success")
            }
        }
        #expect(Set(meters.received.values.map(\.oprid)).count == 6)
        // The retained status shows both meters and nothing pending.
        #expect(senderEventually {
            guard let last = status.messages.last(where: { $0.topic == "kpm33b/config-sender/status" }),
                  let doc = try? JSONValue.parse(last.payload) else { return false }
            return doc["meters_known"]?.intValue == 2 && doc["pending_commands"]?.intValue == 0
                && doc["connections"]?["internal"]?.stringValue == "connected"
                && senderConfiguration(senderMeterA, in: status)?.lastResult == "success"
        })

        #expect(h.stop() == 0)
        #expect(senderEventually {
            status.messages.last { $0.topic == "kpm33b/config-sender/status" }.flatMap { try? JSONValue.parse($0.payload) }?["state"]?.stringValue == "offline"
        })
        #expect(!h.lines("stopped").isEmpty)

        // Restart, same day: the retained discoveries arrive, nothing is sent.
        let before = meters.received.values.count
        try h.start()
        try #require(senderEventually { h.lines("meter_discovered").count == 2 && !h.lines("connected").filter { $0.contains("broker=internal") }.isEmpty })
        usleep(1_500_000)
        #expect(meters.received.values.count == before)
        #expect(h.lines("command_sent").isEmpty)
        #expect(h.stop() == 0)

        // The next day: everything again. The state database says it all
        // happened yesterday (what a restart tomorrow would find).
        let yesterday = senderLocalDate(daysFromToday: -1)
        do {
            let database = try SQLiteDatabase(path: h.stateDatabase.path, create: false)
            try database.execute("UPDATE meters SET acknowledged_date = '\(yesterday)'; UPDATE commands SET date = '\(yesterday)'")
        }
        try #require(h.acknowledgedDate(senderMeterA) == yesterday)
        try h.start()
        try #require(senderEventually { h.acknowledgedDate(senderMeterA) == senderLocalDate() && h.acknowledgedDate(senderMeterB) == senderLocalDate() })
        #expect(meters.received.values.count == before + 6)
        #expect(h.stop() == 0)
    }

    @Test func changedIntervalForOneMeterResendsToThatMeterOnly() throws {
        let h = try SenderHarness(name: "change")
        let meters = try FakeMeters(broker: h.internalBroker, meters: [senderMeterA: .answer, senderMeterB: .answer])
        try h.discover(senderMeterA)
        try h.discover(senderMeterB)
        try h.start()
        try #require(senderEventually { h.acknowledgedDate(senderMeterA) != nil && h.acknowledgedDate(senderMeterB) != nil })
        let before = meters.received.values.count

        try h.writeConfig(perMeter: [senderMeterA: 300])
        // Nothing watches the files: the edit takes effect at SIGHUP.
        usleep(300_000)
        #expect(meters.received.values.count == before)
        h.process?.signal(SIGHUP)
        try #require(senderEventually { h.state?["meters"]?[senderMeterA]?["settings"]?["upload_interval_seconds"]?.intValue == 300 }, "\(h.log)")
        let after = Array(meters.received.values.dropFirst(before))
        #expect(after.count == 1)
        #expect(after.first?.meter == senderMeterA)
        #expect(after.first?.command == "set_upload_interval_seconds")
        #expect(after.first?.payload["value"]?.stringValue == "300")
        #expect(h.lines("config_reloaded").last?.contains("changed_meters=1") == true)

        // A broken config (a value the pack does not allow) is refused; the running one stays.
        try h.writeConfig(perMeter: [senderMeterA: 301])
        h.process?.signal(SIGHUP)
        try #require(senderEventually { !h.lines("reload_failed").isEmpty })
        #expect(h.lines("reload_failed").contains { $0.contains("C003") || $0.contains("301") })
        // Every SIGHUP tries again, even without a change.
        let failures = h.lines("reload_failed").count
        h.process?.signal(SIGHUP)
        try #require(senderEventually { h.lines("reload_failed").count > failures })
        #expect(h.process?.isRunning == true)
        #expect(meters.received.values.count == before + 1)
        #expect(h.stop() == 0)
    }

    @Test func silentMeterIsRetriedWithBackoffThenAlertedWhileOthersAreConfigured() throws {
        let h = try SenderHarness(name: "silent")
        let meters = try FakeMeters(broker: h.internalBroker, meters: [senderMeterA: .silent, senderMeterB: .answer])
        let status = try TestSubscriber(broker: h.centralBroker, filters: ["kpm33b/config-sender/status", "kpm33b/+/configuration"])
        try h.discover(senderMeterA)
        try h.discover(senderMeterB)
        try h.start()

        // B is configured before A's first timeout (1 s) is even over.
        try #require(senderEventually(timeout: 10) { h.acknowledgedDate(senderMeterB) != nil })
        let firstToA = try #require(meters.commands(for: senderMeterA).first?.at)
        let bDone = try #require(meters.commands(for: senderMeterB).last?.at)
        #expect(bDone.timeIntervalSince(firstToA) < 1)

        // Timeout 1 s, 3 retries with 0.5, 1, 2 s backoff: ALERT after about 7.5 s.
        try #require(senderEventually(timeout: 15) { h.lines("ALERT").count == 3 }, "\(h.log)")
        let seconds = meters.commands(for: senderMeterA).filter { $0.command == "set_upload_interval_seconds" }
        #expect(seconds.count == 4)
        #expect(Set(seconds.map(\.oprid)).count == 4)
        let gaps = zip(seconds.dropFirst(), seconds).map { $0.at.timeIntervalSince($1.at) }
        // Each gap is the reply timeout plus a growing backoff: about 1.5, 2, 3 s.
        #expect(gaps.count == 3)
        // Timers never fire early, so the lower bounds are tight; a busy machine may be late.
        for (gap, expected) in zip(gaps, [1.5, 2.0, 3.0]) {
            #expect(gap > expected - 0.25 && gap < expected + 1.5, "gaps \(gaps)")
        }
        #expect(h.lines("ALERT").allSatisfy {
            $0.contains("level=error") && $0.contains("event=meter_not_answering") && $0.contains("meter=\(senderMeterA)")
        })
        #expect(h.acknowledgedDate(senderMeterA) == nil)
        // The state file is written at most every 0.1 s, after the log line.
        #expect(senderEventually { h.state?["meters"]?[senderMeterA]?["commands"]?["set_clock"]?["result"]?.stringValue == "timeout" })
        #expect(h.state?["meters"]?[senderMeterA]?["last_error"]?.stringValue?.hasPrefix("no reply") == true)
        #expect(senderEventually {
            guard let last = status.messages.last(where: { $0.topic == "kpm33b/config-sender/status" }),
                  let doc = try? JSONValue.parse(last.payload) else { return false }
            return doc["alerts"]?.arrayValue?.count == 3 && doc["alerts_total"]?.intValue == 3
                && senderConfiguration(senderMeterA, in: status)?.lastResult == "timeout"
                && senderConfiguration(senderMeterB, in: status)?.lastResult == "success"
        })
        #expect(h.stop() == 0)
    }

    @Test func failureIsRecordedAndMalformedOrUnknownRepliesAreIgnored() throws {
        let h = try SenderHarness(name: "failure")
        let meters = try FakeMeters(broker: h.internalBroker, meters: [
            senderMeterA: .fail(commands: ["set_upload_interval_minutes"], msg: "value not allowed"),
        ])
        let noise = try TestClient(endpoint: h.internalBroker.endpoint, options: MQTTOptions(clientID: "noise"))
        try noise.start()
        defer { noise.stop() }
        try #require(noise.waitUntilConnected(timeout: 10))
        try h.discover(senderMeterA)
        try h.start()
        try #require(senderEventually { !h.lines("connected").filter { $0.contains("broker=internal") }.isEmpty })
        // Junk on the reply topics while the commands are under way, and again once they are
        // answered (the first round may come before the sender's subscriptions are in place).
        func publishJunk() throws {
            for payload in ["{not json", #"{"id":"33B1225950027","code":"01"}"#,
                            #"{"id":"33B1225950027","oprid":"ffffffffffffffffffffffffffffffff","code":"01"}"#, "", "[1,2]"] {
                try noise.publish(topic: "MQTT_COMMOD_SET_REP", payload: Array(payload.utf8), qos: 1, retain: false)
                try noise.publish(topic: "MQTT_METER_TIME_REP", payload: Array(payload.utf8), qos: 1, retain: false)
            }
        }
        try publishJunk()
        try #require(senderEventually {
            h.state?["meters"]?[senderMeterA]?["commands"]?.objectValue?.count == 3
        }, "\(h.log)")
        try publishJunk()
        let commands = try #require(h.state?["meters"]?[senderMeterA]?["commands"])
        #expect(commands["set_upload_interval_minutes"]?["result"]?.stringValue == "failure")
        #expect(commands["set_upload_interval_minutes"]?["msg"]?.stringValue == "value not allowed")
        #expect(commands["set_upload_interval_seconds"]?["result"]?.stringValue == "success")
        #expect(commands["set_clock"]?["result"]?.stringValue == "success")
        #expect(h.state?["meters"]?[senderMeterA]?["last_error"]?.stringValue == "set_upload_interval_minutes failed: value not allowed")
        #expect(h.acknowledgedDate(senderMeterA) == nil)
        #expect(h.lines("command_failed").first?.contains("msg=\"value not allowed\"") == true)
        #expect(senderEventually { !h.lines("reply_ignored").isEmpty })
        #expect(h.process?.isRunning == true)
        // Nothing is retried before the next opportunity; a new discovery is one.
        let count = meters.received.values.count
        usleep(1_500_000)
        #expect(meters.received.values.count == count)
        meters.set(senderMeterA, .answer)
        try h.discover(senderMeterA)
        try #require(senderEventually { h.acknowledgedDate(senderMeterA) != nil })
        #expect(meters.received.values.dropFirst(count).map(\.command) == ["set_upload_interval_minutes"])
        #expect(h.stop() == 0)
    }

    @Test func corruptStateAndKillMinus9LeaveAUsableState() throws {
        let h = try SenderHarness(name: "corrupt")
        let meters = try FakeMeters(broker: h.internalBroker, meters: [senderMeterA: .answer])
        try FileManager.default.createDirectory(at: h.stateDirectory, withIntermediateDirectories: true)
        try "{\"version\":1,\"meters\":{\"33B12259".write(to: h.legacyStateFile, atomically: false, encoding: .utf8)
        // And the leftover of an interrupted write.
        try "{\"version\":1,\"me".write(to: h.stateDirectory.appendingPathComponent(".config-sender-state.json.tmp"),
                                         atomically: false, encoding: .utf8)
        try h.discover(senderMeterA)
        try h.start()
        try #require(senderEventually { h.acknowledgedDate(senderMeterA) != nil }, "\(h.log)")
        #expect(h.lines("state_corrupt").count == 1)
        #expect(h.lines("state_temp_removed").count == 1)
        let aside = try FileManager.default.contentsOfDirectory(atPath: h.stateDirectory.path).filter { $0.contains(".corrupt-") }
        #expect(aside.count == 1)

        // kill -9: no clean stop, no final save. The state written so far is whole.
        h.kill9()
        let sent = meters.received.values.count
        try h.start()
        try #require(senderEventually { !h.lines("meter_discovered").isEmpty && !h.lines("connected").filter { $0.contains("broker=internal") }.isEmpty })
        usleep(1_000_000)
        #expect(h.lines("state_corrupt").isEmpty)
        #expect(h.lines("state_loaded").first?.contains("meters=1") == true)
        #expect(meters.received.values.count == sent)
        #expect(h.stop() == 0)
    }

    /// The whole flow with the project's meter simulator: one meter that
    /// answers (its clock wrong, reported in discovery), one silent, one failing.
    @Test func meterSimFleetIsConfiguredAndTheRestartSendsNothing() throws {
        let h = try SenderHarness(name: "meter-sim")
        let good = senderMeterA, silent = senderMeterB, failing = "33B1225950029"
        let journalFile = h.directory.appendingPathComponent("meter-sim.journal")
        let sim = try ChildProcess(executable: try senderBuiltExecutable("meter-sim"), arguments: [
            "--broker", h.internalBroker.url, "--ids", [good, silent, failing].joined(separator: ","),
            "--silent-ids", silent, "--fail-ids", failing, "--wrong-clock", good,
            "--seconds", "3600", "--minutes", "60", "--journal", journalFile.path, "--quiet",
        ], outputFile: h.directory.appendingPathComponent("meter-sim.log").path)
        defer { sim.terminate() }
        func journal() -> [Substring] {
            ((try? String(contentsOf: journalFile, encoding: .utf8)) ?? "").split(separator: "\n")
        }
        try #require(senderEventually { journal().filter { $0.hasPrefix("subscribed ") }.count == 3 }, "\(journal())")

        try h.discover(good, clockOffset: -662_774_400)  // the meter thinks it is 2005
        try h.discover(silent)
        try h.discover(failing)
        try h.start()

        try #require(senderEventually { h.acknowledgedDate(good) != nil }, "\(h.log)")
        let short = String(good.suffix(8))
        let received = journal().filter { $0.hasPrefix("received ") && $0.hasSuffix("}") && $0.contains(short) }
        #expect(received.count == 3)
        for line in received {
            let parts = line.split(separator: " ", maxSplits: 2)
            let payload = try JSONValue.parse(String(parts[2]))
            let oprid = payload["oprid"]?.stringValue ?? ""
            #expect(oprid.utf8.count == 32)
            if parts[1] == "MQTT_SETTIME_\(short)" {
                #expect(payload.objectValue?.keys == ["oprid", "time"])
            } else {
                #expect(parts[1] == "MQTT_COMMOD_SET_\(short)")
                let expected: JSONValue = payload["Cmd"]?.stringValue == "0000"
                    ? .object(["oprid": .string(oprid), "Cmd": "0000", "value": "60", "types": "1"])
                    : .object(["oprid": .string(oprid), "Cmd": "0001", "value": "5", "types": "1"])
                #expect(payload == expected)
            }
        }
        // The clock went out once (the offset correction and the daily command are one).
        #expect(received.filter { $0.contains("MQTT_SETTIME_") }.count == 1)
        let applied = journal().filter { $0.hasPrefix("applied \(good) ") }
        #expect(applied.contains { $0.hasSuffix("seconds interval 60") })
        #expect(applied.contains { $0.hasSuffix("minutes interval 5") })
        #expect(applied.contains { $0.contains("clock \(senderLocalDate().replacingOccurrences(of: "-", with: ""))") })
        #expect(journal().filter { $0.hasPrefix("sent MQTT_COMMOD_SET_REP ") || $0.hasPrefix("sent MQTT_METER_TIME_REP ") }
            .filter { $0.contains(good) }.count == 3)

        // The failing meter: code 02 recorded with the meter's message.
        try #require(senderEventually { h.state?["meters"]?[failing]?["commands"]?.objectValue?.count == 3 })
        let failed = try #require(h.state?["meters"]?[failing])
        #expect(failed["commands"]?["set_clock"]?["result"]?.stringValue == "failure")
        #expect(failed["commands"]?["set_upload_interval_seconds"]?["msg"]?.stringValue == "simulated failure")
        #expect(failed["acknowledged_date"] == nil)

        // The silent meter: retried, then ALERT, without holding up the others.
        try #require(senderEventually(timeout: 15) { h.lines("ALERT").count == 3 }, "\(h.log)")
        #expect(h.lines("ALERT").allSatisfy { $0.contains("meter=\(silent)") })
        #expect(journal().filter { $0.hasPrefix("ignored MQTT_COMMOD_SET_\(silent.suffix(8))") }.count == 8)
        #expect(h.stop() == 0)

        // A restart the same day sends the good meter nothing.
        let before = journal().filter { $0.hasPrefix("received ") && $0.contains(short) }.count
        try h.start()
        try #require(senderEventually { h.lines("meter_discovered").count == 3 && !h.lines("connected").filter { $0.contains("broker=internal") }.isEmpty })
        usleep(1_500_000)
        #expect(journal().filter { $0.hasPrefix("received ") && $0.contains(short) }.count == before)
        #expect(h.stop() == 0)
    }

    @Test func sigtermWaitsForRepliesInFlightThenSavesAndExits() throws {
        let h = try SenderHarness(name: "sigterm")
        // A reply timeout (and so a drain) of 3 s: a reply 0.6 s late is never taken for a
        // timeout, even when a busy machine delays this process's fake meters.
        try h.writeConfig(timeout: 3)
        let meters = try FakeMeters(broker: h.internalBroker, meters: [senderMeterA: .delayed(0.6)])
        try h.discover(senderMeterA)
        try h.start()
        try #require(senderEventually { h.lines("command_sent").count == 3 })
        let started = Date()
        #expect(h.stop() == 0)
        #expect(Date().timeIntervalSince(started) > 0.4)
        #expect(h.lines("stopping").first?.contains("awaiting_replies=3") == true)
        #expect(h.lines("stopping_without_replies").isEmpty)
        #expect(h.acknowledgedDate(senderMeterA) == senderLocalDate(), "\(h.log)")
        #expect(meters.received.values.count == 3)
    }

    /// With the internal broker's ACL (MQTT 5), a command the account may not
    /// send is refused at once and recorded; the allowed ones go through.
    @Test func commandRefusedByTheBrokerACLIsRecordedAtOnce() throws {
        let short = String(senderMeterA.suffix(8))
        let acl = [
            "user kpm33b-config",
            "topic write MQTT_COMMOD_SET_\(short)",
            "topic read MQTT_COMMOD_SET_REP",
            "topic read MQTT_METER_TIME_REP",
            "user \(short)",
            "topic read MQTT_COMMOD_SET_\(short)",
            "topic read MQTT_SETTIME_\(short)",
            "topic write MQTT_COMMOD_SET_REP",
            "topic write MQTT_METER_TIME_REP",
        ]
        let h = try SenderHarness(
            name: "acl", internal: TestBroker.Configuration(users: ["kpm33b-config": "sender-secret", short: "meter-secret"], acl: acl),
            internalClient: "{ client_id: test-config-sender, username: kpm33b-config, password_env: TEST_SENDER_PASSWORD }",
            environment: ["TEST_SENDER_PASSWORD": "sender-secret"])
        let meters = try FakeMeters(broker: h.internalBroker, meters: [senderMeterA: .answer], username: short, password: "meter-secret")
        try h.discover(senderMeterA)
        try h.start()
        try #require(senderEventually { h.state?["meters"]?[senderMeterA]?["commands"]?.objectValue?.count == 3 }, "\(h.log)")
        let commands = try #require(h.state?["meters"]?[senderMeterA]?["commands"])
        #expect(commands["set_upload_interval_seconds"]?["result"]?.stringValue == "success")
        #expect(commands["set_upload_interval_minutes"]?["result"]?.stringValue == "success")
        #expect(commands["set_clock"]?["result"]?.stringValue == "failure")
        #expect(commands["set_clock"]?["msg"]?.stringValue?.hasPrefix("the broker refused set_clock") == true)
        #expect(h.lines("command_refused").count == 1)
        #expect(h.lines("reply_timeout").isEmpty)
        #expect(meters.commands(for: senderMeterA).map(\.command).sorted() == ["set_upload_interval_minutes", "set_upload_interval_seconds"])
        #expect(h.stop() == 0)
    }
}
