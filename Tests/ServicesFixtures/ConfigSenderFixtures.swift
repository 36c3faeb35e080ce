import Foundation
import JSON
import Clock
@testable import MQTT
import RuleEngine
import SiteSettings
import Testing
import TestSupport
@testable import Services

// What the config sender's tests share: a site config, a planner over it,
// the meters' replies, a fixed "now".

/// The package root, found from this file's location (nothing machine-specific is stored).
let senderPackageRoot = URL(fileURLWithPath: Repository.root)
let senderPackPath = senderPackageRoot.appendingPathComponent("rules/kpm33b").path

/// A fresh temporary directory, removed by the caller.
func senderTemporaryDirectory(_ name: String) throws -> URL {
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("\(name)-\(UUID().uuidString.prefix(8))")
    try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    return dir
}

/// A site config for tests: short timeouts, and per-meter settings when given.
/// Pacing: no spacing between a meter's commands unless asked (the tests of
/// the unpaced decisions see all of a meter's commands at once); nil leaves a
/// key out, so the site default applies.
func senderConfigText(seconds: Int = 60, minutes: Int = 5, perMeter: [String: Int] = [:], internalPort: Int = 1,
                      centralPort: Int = 2, timeout: Double = 1, retries: Int = 3, periodic: Int = 600,
                      internalClient: String = "{ client_id: test-config-sender }",
                      centralClient: String = "{ client_id: test-config-sender }",
                      maxInFlight: Int? = nil, minSpacingMs: Int? = 0) -> String {
    var text = """
        root_topic: kpm33b
        brokers:
          internal:
            host: 127.0.0.1
            port: \(internalPort)
            protocol: 5
            clients:
              config_sender: \(internalClient)
          central:
            host: 127.0.0.1
            port: \(centralPort)
            protocol: 5
            clients:
              config_sender: \(centralClient)
        meters:
          defaults:
            settings:
              upload_interval_seconds: \(seconds)
              upload_interval_minutes: \(minutes)

        """
    for (id, value) in perMeter.sorted(by: { $0.key < $1.key }) {
        text += "  \"\(id)\":\n    settings: { upload_interval_seconds: \(value) }\n"
    }
    text += """
        proxy:
          clock_skew_threshold_s: 300
        config_sender:
          status_topic: kpm33b/config-sender/status
          reply_timeout_s: \(timeout)
          retries: \(retries)
          periodic_pass_s: \(periodic)
        \(maxInFlight.map { "  max_in_flight: \($0)\n" } ?? "")\(minSpacingMs.map { "  min_spacing_ms: \($0)\n" } ?? "")

        """
    return text
}

func buildSenderSite(_ configText: String) throws -> Site {
    let dir = try senderTemporaryDirectory("sender-config")
    defer { try? FileManager.default.removeItem(at: dir) }
    let file = dir.appendingPathComponent("config.yaml")
    try configText.write(to: file, atomically: true, encoding: .utf8)
    do {
        return try Site.load(rules: senderPackPath, config: file.path)
    } catch {
        Issue.record("config did not compile: \(error.description)")
        throw error
    }
}

let senderMeterA = "33B1225950027"
let senderMeterB = "33B1225950028"

/// 2026-01-12 10:00:00 UTC, one hour east of UTC.
let senderT0 = Instant(epochMillis: 1_768_212_000_000, utcOffsetSeconds: 3600)

extension ConfigPlanner.Action {
    var sent: CommandMessage? { if case .send(let m) = self { m } else { nil } }
    var event: ConfigEvent? { if case .log(let e) = self { e } else { nil } }
}

extension Array where Element == ConfigPlanner.Action {
    var sent: [CommandMessage] { compactMap(\.sent) }
    var events: [ConfigEvent] { compactMap(\.event) }
}

extension ConfigTime {
    /// A test's "now": the monotonic clock reads what the wall clock does, so
    /// that neither jumps unless a test says so.
    init(testing wall: Instant) {
        self.init(wall: wall, monotonic: MonotonicInstant(nanoseconds: UInt64(wall.epochMillis) * 1_000_000))
    }
}

/// The planner's events at one wall-clock instant (see `ConfigTime(testing:)`).
extension ConfigPlanner {
    mutating func setInternalConnected(_ connected: Bool, now: Instant) -> [Action] {
        setInternalConnected(connected, now: ConfigTime(testing: now))
    }
    mutating func discovered(_ id: String, clockOffsetSeconds: Int?, now: Instant) -> [Action] {
        discovered(id, clockOffsetSeconds: clockOffsetSeconds, now: ConfigTime(testing: now))
    }
    mutating func forget(_ id: String, now: Instant) -> [Action] { forget(id, now: ConfigTime(testing: now)) }
    mutating func tick(now: Instant) -> [Action] { tick(now: ConfigTime(testing: now)) }
    mutating func reply(_ reply: CommandReply, now: Instant) -> [Action] { self.reply(reply, now: ConfigTime(testing: now)) }
    mutating func publishRefused(operationID: String, reason: String, now: Instant) -> [Action] {
        publishRefused(operationID: operationID, reason: reason, now: ConfigTime(testing: now))
    }
    mutating func replace(programs: ProgramSet, options: Options, now: Instant) -> [Action] {
        replace(programs: programs, options: options, now: ConfigTime(testing: now))
    }
}

/// A planner over the test config, connected, with deterministic oprids.
func makePlanner(_ config: String = senderConfigText(), records: [String: MeterRecord] = [:]) throws -> ConfigPlanner {
    let site = try buildSenderSite(config)
    var planner = ConfigPlanner(programs: site.programs, options: ConfigPlanner.Options(site: site), records: records,
                                ids: OperationIDGenerator(SplitMix(seed: 42)))
    _ = planner.setInternalConnected(true, now: senderT0)
    return planner
}

/// The reply a meter would send to `message`.
func senderReplyPayload(_ message: CommandMessage, code: String = "01", msg: String? = nil, id: String? = nil) -> [UInt8] {
    var object: JSONObject = ["id": .string(id ?? message.deviceID), "oprid": .string(message.operationID), "code": .string(code)]
    if let msg { object["msg"] = .string(msg) }
    return JSONValue.object(object).serialized()
}

func senderReplyTopic(_ message: CommandMessage) -> String {
    message.command == "set_clock" ? "MQTT_METER_TIME_REP" : "MQTT_COMMOD_SET_REP"
}

extension ConfigPlanner {
    /// Answers `message` as the meter would; the reply must parse.
    mutating func answer(_ message: CommandMessage, code: String = "01", msg: String? = nil, now: Instant) -> [Action] {
        guard let reply = programs.parseReply(topic: senderReplyTopic(message), payload: senderReplyPayload(message, code: code, msg: msg)) else {
            Issue.record("reply to \(message.command) did not parse")
            return []
        }
        return self.reply(reply, now: now)
    }
}

