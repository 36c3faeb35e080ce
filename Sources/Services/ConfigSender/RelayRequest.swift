import RuleEngine

/// A command on demand from Home Assistant (a relay switched, `value: {
/// request: … }` in the pack): plain text, one of the request's values
/// (`ON`), on the pack's request topic of the meter (`kpm33b/<id>/relay/set`
/// with the shipped packs), published without the retain flag. The topic
/// comes from the pack that runs the meter, never from this type.
///
/// The parser refuses what is not a request with a named reason, the
/// status's `requests` counter names: `unknown_meter` (no pack runs the
/// meter with that command), `wrong_type` (not plain text), `bad_value`
/// (not one of the request's values). Whether the meter was discovered, or
/// a request of it already awaits a reply, is `RelayRequests`' business.
public struct RelayRequest: Sendable, Equatable {
    public var meter: String
    /// The pack's command (`switch_relay`).
    public var command: String
    /// One of the request's values (`ON`).
    public var value: String

    public init(meter: String, command: String, value: String) {
        self.meter = meter
        self.command = command
        self.value = value
    }

    /// Why a message on a request topic is not a request.
    public struct Refusal: Error, Sendable, Equatable {
        public enum Reason: String, Sendable {
            case unknownMeter = "unknown_meter"
            case wrongType = "wrong_type"
            case badValue = "bad_value"
        }

        public var reason: Reason
        /// The meter the topic names, if it names one.
        public var meter: String?
        public var detail: String
    }

    /// The request topic of the meter's pack; nil when no pack runs the meter with this command.
    public func topic(in programs: ProgramSet) -> String? {
        programs.program(for: meter)?.requestTopic(command, for: meter)
    }

    public var payload: [UInt8] { Array(value.utf8) }

    /// A message on a request topic (`ProgramSet.requestSubscriptions`).
    public init(topic: String, payload: [UInt8], programs: ProgramSet) throws(Refusal) {
        guard let parsed = programs.parseRequestTopic(topic) else {
            throw Refusal(reason: .unknownMeter, detail: "not a request topic of any pack")
        }
        let id = parsed.deviceID
        guard let owner = programs.program(for: id), owner.isValidDeviceID(id), owner.requestCommandNames.contains(parsed.command) else {
            throw Refusal(reason: .unknownMeter, meter: id, detail: "no pack runs this meter with command '\(parsed.command)'")
        }
        let values = owner.requestValues(parsed.command)
        guard let text = String(validating: payload, as: UTF8.self), !text.isEmpty,
              !["{", "[", "\""].contains(where: { text.hasPrefix($0) }) else {
            throw Refusal(reason: .wrongType, meter: id, detail: "the request must be plain text, one of \(values.joined(separator: ", "))")
        }
        guard values.contains(text) else {
            throw Refusal(reason: .badValue, meter: id, detail: "'\(text.prefix(40))' is not one of \(values.joined(separator: ", "))")
        }
        self.init(meter: id, command: parsed.command, value: text)
    }
}

/// The state of a meter's output the meter confirmed, retained on the pack's
/// state topic of the request (`kpm33b/<id>/relay`): the request value it
/// carried out (`ON`), plain text, what Home Assistant's switch shows.
/// Published by config-sender only on the meter's success reply.
public struct RelayState: Sendable, Equatable {
    public var meter: String
    public var command: String
    public var value: String

    public init(meter: String, command: String, value: String) {
        self.meter = meter
        self.command = command
        self.value = value
    }

    /// The state topic of the meter's pack; nil when no pack runs the meter with this command.
    public func topic(in programs: ProgramSet) -> String? {
        programs.program(for: meter)?.requestStateTopic(command, for: meter)
    }

    public var payload: [UInt8] { Array(value.utf8) }

    /// A message on a state topic; nil when the topic is not one, or the
    /// payload not one of the request's values (an empty payload: cleared).
    public init?(topic: String, payload: [UInt8], programs: ProgramSet) {
        guard let parsed = programs.parseRequestStateTopic(topic), let owner = programs.program(for: parsed.deviceID),
              owner.requestCommandNames.contains(parsed.command), let text = String(validating: payload, as: UTF8.self),
              owner.requestValues(parsed.command).contains(text) else { return nil }
        self.init(meter: parsed.deviceID, command: parsed.command, value: text)
    }
}
