import Foundation
import JSON
@testable import MQTT
import RuleEngine
import Testing
import TestSupport
@testable import Services

// The config sender core's test fixture: a recording transport in place of
// both brokers, a state directory, a log file, clocks moved by hand.

/// Plays both brokers: records what the core publishes and subscribes,
/// numbering messages as a broker connection would.
final class RecordingSenderTransport: ConfigSenderTransport {
    struct Published: Equatable {
        var mid: Int32
        var topic: String
        var payload: [UInt8]
        var retain: Bool
        var json: JSONValue? { try? JSONValue.parse(payload) }
    }

    var isCentralConnected = true
    var commandsFail = false
    private(set) var commands: [Published] = []
    private(set) var statuses: [Published] = []
    /// Retained messages on other topics: Home Assistant's configs of the service's own device.
    private(set) var healthConfigs: [Published] = []
    /// Each meter's problem state (`kpm33b/<id>/problem`).
    private(set) var problems: [Published] = []
    /// Each meter's configuration state (`kpm33b/<id>/configuration`).
    private(set) var configurations: [Published] = []
    private(set) var subscriptions: [String] = []
    private var nextMid: Int32 = 0

    func publishCommand(topic: String, payload: [UInt8]) throws(MQTTError) -> Int32 {
        if commandsFail { throw MQTTError(.noConnection, "the test says no") }
        nextMid += 1
        commands.append(Published(mid: nextMid, topic: topic, payload: payload, retain: false))
        return nextMid
    }

    func subscribeReplies(_ filter: String) throws(MQTTError) {
        subscriptions.append(filter)
    }

    func publishStatus(topic: String, payload: [UInt8]) throws(MQTTError) -> Int32 {
        nextMid += 1
        let message = Published(mid: nextMid, topic: topic, payload: payload, retain: true)
        if topic.hasPrefix("homeassistant/") {
            healthConfigs.append(message)
        } else if topic.hasSuffix("/problem") {
            problems.append(message)
        } else if topic.hasSuffix("/configuration") {
            configurations.append(message)
        } else {
            statuses.append(message)
        }
        return nextMid
    }
}

/// A core over the test config, a state directory, a log file and a
/// recording transport; the test moves both clocks by hand.
final class SenderCoreFixture {
    let directory: URL
    let transport = RecordingSenderTransport()
    let core: ConfigSenderCore
    let store: ConfigStateStore
    private let logFD: Int32
    var now = ConfigTime(testing: senderT0)

    static let statusTopic = "kpm33b/config-sender/status"

    /// `prepareState` runs on the (existing, empty) state directory before the store opens it.
    init(config: String = senderConfigText(), statusMinIntervalSeconds: Double = 1, writeDelaySeconds: Double = 0,
         prepareState: (URL) throws -> Void = { _ in }) throws {
        directory = try senderTemporaryDirectory("sender-core")
        let site = try buildSenderSite(config)
        let stateDirectory = directory.appendingPathComponent("state")
        try FileManager.default.createDirectory(at: stateDirectory, withIntermediateDirectories: true)
        try prepareState(stateDirectory)
        store = ConfigStateStore(directory: stateDirectory.path, writeDelaySeconds: writeDelaySeconds)
        _ = try store.load(now: senderT0)
        let planner = ConfigPlanner(programs: site.programs, options: ConfigPlanner.Options(site: site),
                                    ids: OperationIDGenerator(SplitMix(seed: 7)))
        logFD = open(directory.appendingPathComponent("log").path, O_WRONLY | O_CREAT | O_APPEND, 0o644)
        core = ConfigSenderCore(planner: planner, store: store,
                                settings: .init(statusTopic: Self.statusTopic, discoverySubscriptions: ["kpm33b/discovery/+"],
                                                statusMinIntervalSeconds: statusMinIntervalSeconds),
                                startedAt: senderT0, log: Log(level: .debug, fd: logFD))
        core.transport = transport
    }

    deinit {
        close(logFD)
        try? FileManager.default.removeItem(at: directory)
    }

    /// Both brokers up, as their CONNACKs would say.
    func connect() {
        core.centralConnectionChanged(true)
        core.internalConnectionChanged(true, at: now)
    }

    func advance(_ seconds: Double) { now = now.adding(seconds: seconds) }

    func discover(_ id: String, clockOffset: Int? = nil) {
        var doc: JSONObject = ["id": .string(id), "manufacturer": "Compere"]
        if let clockOffset { doc["clock_offset_s"] = .integer(Int64(clockOffset)) }
        core.discoveryReceived(topic: "kpm33b/discovery/\(id)", payload: JSONValue.object(doc).serialized(), at: now)
    }

    /// The meter's reply to a recorded command.
    func answer(_ command: RecordingSenderTransport.Published, code: String = "01", msg: String? = nil) {
        let meter = command.topic.hasPrefix("MQTT_SETTIME_") || command.topic.hasPrefix("MQTT_COMMOD_SET_")
            ? "33B12" + command.topic.split(separator: "_").last! : "?"
        var reply: JSONObject = ["id": .string(meter), "oprid": .string(command.json?["oprid"]?.stringValue ?? ""),
                                 "code": .string(code)]
        if let msg { reply["msg"] = .string(msg) }
        let topic = command.topic.hasPrefix("MQTT_SETTIME_") ? "MQTT_METER_TIME_REP" : "MQTT_COMMOD_SET_REP"
        core.replyReceived(topic: topic, payload: JSONValue.object(reply).serialized(), at: now)
    }

    /// The state database as the next start would read it, once the writer thread wrote what it was given.
    var savedRecords: [String: MeterRecord] {
        _ = store.flush(seconds: 60)
        return (try? ConfigStateStore.readRecords(path: store.path)) ?? [:]
    }

    var logLines: [Substring] {
        ((try? String(contentsOf: directory.appendingPathComponent("log"), encoding: .utf8)) ?? "").split(separator: "\n")
    }

    func lines(_ msg: String) -> [Substring] { logLines.filter { $0.contains("msg=\(msg) ") || $0.hasSuffix("msg=\(msg)") } }

    var lastStatus: JSONValue? { transport.statuses.last?.json }

    /// Meter `id`'s configuration state as last published.
    func configuration(_ id: String) -> MeterConfigurationState? {
        transport.configurations.last { $0.topic == "kpm33b/\(id)/configuration" }.flatMap { MeterConfigurationState(payload: $0.payload) }
    }
}
