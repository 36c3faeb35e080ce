import JSON
/// The platform's commands as a KPM33B understands them, decided without side
/// effects: what to answer, and what to change.
enum MeterCommands {
    enum Kind: String {
        case setInterval = "MQTT_COMMOD_SET_"
        case setTime = "MQTT_SETTIME_"
        case readInterval = "MQTT_COMMOD_READ_"
        /// Switch the relay output (KPM37): `{"do1":"1"|"0","oprid":…}`.
        case relay = "MQTT_TELECTRL_"

        var replyTopic: String {
            switch self {
            case .setInterval: return "MQTT_COMMOD_SET_REP"
            case .setTime: return "MQTT_METER_TIME_REP"
            case .readInterval: return "MQTT_COMMOD_READ_REP"
            case .relay: return "MQTT_TELECTRL_REP"
            }
        }
    }

    static let allowedSeconds = [30, 60, 300, 600, 900, 1200, 1800, 3600]
    static let allowedMinutes = [1, 5, 10, 15, 20, 30, 60, 1440]

    enum Effect: Equatable {
        case secondsInterval(Int)
        case minutesInterval(Int)
        case clock(MeterTime)
        case relay(on: Bool)
    }

    enum Decision: Equatable {
        /// No answer at all (what the meter does with an unusable command).
        case ignore(reason: String)
        /// Answer on `topic`; apply `effect` (nil for failures and reads).
        case reply(topic: String, payload: String, effect: Effect?)
    }

    /// What the meter `id` does with `payload` received on a `kind` topic.
    /// `failing`: a meter that answers "02" to everything (`--fail-ids`).
    static func decide(kind: Kind, payload: [UInt8], id: String, secondsInterval: Int, minutesInterval: Int,
                       failing: Bool) -> Decision {
        let document: JSONValue
        do {
            // Strict like the meter: a repeated key makes the command unusable.
            document = try JSONValue.parse(payload, allowAnyTopLevel: true, rejectDuplicateKeys: true)
        } catch {
            return .ignore(reason: "malformed JSON (\(error))")
        }
        guard let members = document.objectValue else { return .ignore(reason: "not a JSON object") }
        var fields: [String: String] = [:]
        for (key, value) in members {
            guard let text = value.stringValue else { return .ignore(reason: "field '\(key)' is not a string") }
            fields[key] = text
        }
        guard let oprid = fields["oprid"] else { return .ignore(reason: "no oprid") }
        guard oprid.count == 32 else { return .ignore(reason: "oprid has \(oprid.count) characters, not 32") }

        func failure(_ message: String, extra: [(String, String)] = []) -> Decision {
            var w = PayloadWriter()
            w.string("id", id)
            w.string("oprid", oprid)
            for (k, v) in extra { w.string(k, v) }
            w.string("code", "02")
            w.string("msg", message)
            return .reply(topic: kind.replyTopic, payload: w.result, effect: nil)
        }
        if failing { return failure("simulated failure") }

        switch kind {
        case .setInterval:
            guard let cmd = fields["Cmd"], cmd == "0000" || cmd == "0001" else {
                return failure("unknown Cmd '\(fields["Cmd"] ?? "")'")
            }
            guard let types = fields["types"], types == "1" || types == "2" else {
                return failure("unknown types '\(fields["types"] ?? "")'")
            }
            guard let text = fields["value"], let value = integer(text, allowFraction: types == "2") else {
                return failure("value '\(fields["value"] ?? "")' is not a number")
            }
            let allowed = cmd == "0000" ? allowedSeconds : allowedMinutes
            guard allowed.contains(value) else {
                return failure("value \(value) not allowed for Cmd \(cmd); allowed: "
                               + allowed.map(String.init).joined(separator: ","))
            }
            var w = PayloadWriter()
            w.string("id", id)
            w.string("oprid", oprid)
            w.string("code", "01")
            return .reply(topic: kind.replyTopic, payload: w.result,
                          effect: cmd == "0000" ? .secondsInterval(value) : .minutesInterval(value))

        case .setTime:
            guard let text = fields["time"], let time = MeterTime(compact: text) else {
                return failure("invalid time '\(fields["time"] ?? "")'")
            }
            var w = PayloadWriter()
            w.string("id", id)
            w.string("oprid", oprid)
            w.string("code", "01")
            w.string("msg", "time set")
            return .reply(topic: kind.replyTopic, payload: w.result, effect: .clock(time))

        case .readInterval:
            guard let cmd = fields["Cmd"], cmd == "0000" || cmd == "0001" else {
                return failure("unknown Cmd '\(fields["Cmd"] ?? "")'", extra: [("Cmd", fields["Cmd"] ?? "")])
            }
            var w = PayloadWriter()
            w.string("id", id)
            w.string("oprid", oprid)
            w.string("Cmd", cmd)
            w.string("value", String(cmd == "0000" ? secondsInterval : minutesInterval))
            w.string("code", "01")
            return .reply(topic: kind.replyTopic, payload: w.result, effect: nil)

        case .relay:
            // Strict: exactly do1 and oprid, do1 "1" (close) or "0" (open).
            if let other = fields.keys.sorted().first(where: { $0 != "do1" && $0 != "oprid" }) {
                return failure("unknown field '\(other)'")
            }
            guard let state = fields["do1"], state == "0" || state == "1" else {
                return failure("do1 '\(fields["do1"] ?? "")' is not \"0\" or \"1\"")
            }
            var w = PayloadWriter()
            w.string("id", id)
            w.string("dox", "do1")
            w.string("oprid", oprid)
            w.string("code", "01")
            return .reply(topic: kind.replyTopic, payload: w.result, effect: .relay(on: state == "1"))
        }
    }

    /// "30" (and with `allowFraction` also "30.0") as 30; nil for anything else.
    static func integer(_ text: String, allowFraction: Bool) -> Int? {
        var whole = Substring(text)
        if allowFraction, let dot = text.firstIndex(of: ".") {
            let fraction = text[text.index(after: dot)...]
            guard !fraction.isEmpty, fraction.allSatisfy({ $0 == "0" }) else { return nil }
            whole = text[..<dot]
        }
        guard !whole.isEmpty, whole.count <= 6, whole.allSatisfy({ $0.isASCII && $0.isNumber }) else { return nil }
        return Int(whole)
    }
}
