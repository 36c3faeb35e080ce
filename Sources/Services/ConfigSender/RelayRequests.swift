import Clock
import RuleEngine

/// Commands on demand from the central broker (a relay switched from Home
/// Assistant, `value: { request: … }` in the pack), as a pure state machine
/// beside `ConfigPlanner`: a request in, a command out, the meter's reply (or
/// its absence) decides what the site sees.
///
/// - A request is validated like everything else: parsed (`RelayRequest`:
///   run by a pack with that command, its payload one of the request's
///   values), its meter known (discovered, not excluded), none of its
///   command awaiting a reply; otherwise it is counted by reason
///   (`unknown_meter`, `bad_value`, `wrong_type`, `busy`) and logged.
/// - A request the broker hands over with the retain flag is never carried
///   out: kept on the broker, it would switch the relay again at every start
///   and reconnect of config-sender. It is counted (`retained_ignored`) and
///   logged. (The subscription keeps the publisher's retain flag, MQTT 5.)
/// - It is sent once, with a fresh operation id. No retry: switching a relay
///   again later is not what was asked.
/// - Success (`01`): the confirmed state (`RelayState`) is published
///   retained on the request's state topic, so Home Assistant shows what the meter did.
///   Failure (`02`) or no reply within the timeout: the state stays as it was
///   and an alert is raised (`ConfigPlanner`'s alerts: status, problem, log).
struct RelayRequests: Sendable {
    struct InFlight: Sendable, Equatable {
        /// The state the meter's success reply confirms.
        var state: RelayState
        var meter: String { state.meter }
        var command: String { state.command }
        /// The request payload that was asked for (`ON`).
        var key: String { state.value }
        var operationID: String
        var stateTopic: String
        var deadline: MonotonicInstant
    }

    enum Action: Sendable, Equatable {
        /// Publish with QoS 1 to the internal broker.
        case send(CommandMessage)
        /// Publish retained on the central broker.
        case publishState(topic: String, payload: [UInt8])
        case alert(meter: String, command: String, message: String)
        case clearAlert(meter: String, command: String)
        case log(ConfigEvent)
    }

    /// Counted outcomes, by name (the status's `requests`).
    static let counterNames = ["accepted", "confirmed", "failed", "timeout", "unknown_meter", "bad_value", "wrong_type", "busy",
                               "retained_ignored"]

    private(set) var inFlight: [String: InFlight] = [:]
    private(set) var counters: [String: Int] = Dictionary(uniqueKeysWithValues: counterNames.map { ($0, 0) })
    /// Bumped on every change the status shows.
    private(set) var version = 0

    var nextDeadline: MonotonicInstant? { inFlight.values.map(\.deadline).min() }

    private mutating func count(_ name: String) {
        counters[name, default: 0] += 1
        version += 1
    }

    /// A message on a request topic of the central broker.
    /// `isKnown`: whether the planner knows the meter (discovered, not excluded).
    mutating func request(topic: String, payload: [UInt8], programs: ProgramSet, isKnown: (String) -> Bool,
                          operationID: () -> String, timeoutSeconds: Double, now: ConfigTime) -> [Action] {
        func reject(_ reason: String, _ detail: String, meter: String? = nil) -> [Action] {
            count(reason)
            return [.log(ConfigEvent(.warning, "request_rejected", [("reason", reason), ("topic", topic), ("meter", meter), ("detail", detail)]))]
        }
        let request: RelayRequest
        do {
            request = try RelayRequest(topic: topic, payload: payload, programs: programs)
        } catch {
            return reject(error.reason.rawValue, error.detail, meter: error.meter)
        }
        let id = request.meter
        guard !programs.isExcluded(id), isKnown(id) else {
            return reject("unknown_meter", programs.isExcluded(id) ? "the meter is excluded" : "the meter was never discovered", meter: id)
        }
        if let busy = inFlight.values.first(where: { $0.meter == id && $0.command == request.command }) {
            return reject("busy", "a request (\(busy.key)) awaits the meter's reply", meter: id)
        }
        let oprid = operationID()
        let state = RelayState(meter: id, command: request.command, value: request.value)
        guard let message = programs.program(for: id)?.renderRequest(request.command, for: id, key: request.value, operationID: oprid),
              let stateTopic = state.topic(in: programs) else {
            return reject("unknown_meter", "command '\(request.command)' cannot be rendered for this meter", meter: id)
        }
        inFlight[oprid] = InFlight(state: state, operationID: oprid, stateTopic: stateTopic,
                                   deadline: now.monotonic.adding(seconds: timeoutSeconds))
        count("accepted")
        return [
            .log(ConfigEvent(.info, "request_sent", [("meter", id), ("command", request.command), ("value", request.value),
                                                     ("oprid", oprid)])),
            .send(message),
        ]
    }

    /// A request delivered with the retain flag: ignored, whatever it asks.
    /// config-sender may not clear it (it has no write right on request
    /// topics); the log says how.
    mutating func retained(topic: String) -> [Action] {
        count("retained_ignored")
        return [.log(ConfigEvent(.warning, "request_ignored", [
            ("reason", "retained"), ("topic", topic),
            ("detail", "a retained request would be carried out again at every start; requests must be published without the retain flag"),
            ("hint", "clear it with: mosquitto_pub -r -n -t '\(topic)'"),
        ]))]
    }

    /// A reply; nil when its operation id is not one of ours (the planner's, then).
    mutating func reply(_ reply: CommandReply) -> [Action]? {
        guard let p = inFlight[reply.operationID] else { return nil }
        if let device = reply.deviceID, device != p.meter {
            return [.log(ConfigEvent(.warning, "reply_ignored", [("reason", "oprid belongs to another meter"), ("oprid", reply.operationID),
                                                                   ("meter", device), ("expected", p.meter)]))]
        }
        guard reply.commands.contains(p.command) else {
            return [.log(ConfigEvent(.warning, "reply_ignored", [("reason", "reply topic does not answer this command"),
                                                                   ("oprid", reply.operationID), ("topic", reply.topic), ("command", p.command)]))]
        }
        inFlight[reply.operationID] = nil
        if reply.success {
            count("confirmed")
            return [
                .publishState(topic: p.stateTopic, payload: p.state.payload),
                .clearAlert(meter: p.meter, command: p.command),
                .log(ConfigEvent(.info, "request_confirmed", [("meter", p.meter), ("command", p.command), ("value", p.key),
                                                             ("oprid", p.operationID), ("state_topic", p.stateTopic)])),
            ]
        }
        count("failed")
        let message = "\(p.command) \(p.key) failed: \(reply.message ?? "the meter answered failure")"
        return [
            .alert(meter: p.meter, command: p.command, message: message),
            .log(ConfigEvent(.alert, "request_failed", [("meter", p.meter), ("command", p.command), ("value", p.key),
                                                       ("oprid", p.operationID), ("msg", reply.message), ("state", "unchanged")])),
        ]
    }

    /// Requests whose reply did not come in time: the state stays, an alert goes up.
    mutating func tick(now: ConfigTime) -> [Action] {
        var actions: [Action] = []
        for p in inFlight.values.sorted(by: { $0.operationID < $1.operationID }) where now.monotonic >= p.deadline {
            inFlight[p.operationID] = nil
            count("timeout")
            let message = "\(p.command) \(p.key): no reply from the meter"
            actions += [
                .alert(meter: p.meter, command: p.command, message: message),
                .log(ConfigEvent(.alert, "request_timeout", [("meter", p.meter), ("command", p.command), ("value", p.key),
                                                            ("oprid", p.operationID), ("state", "unchanged")])),
            ]
        }
        return actions
    }
}
