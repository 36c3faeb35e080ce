import Foundation
import RuleEngine
import SiteSettings
import Testing
@testable import Services
@testable import ServicesFixtures

/// The relay request and the relay state as messages: each written and
/// parsed by one type, on the topics of the pack that runs the meter (every
/// pack under rules/, the meter a KPM37 by `default_pack`); a malformed
/// request refused with a named reason, counted, never sent to the meter.
@Suite struct RelayRequestTests {
    static let meter = "37A1225950001"
    static let kpm33b = "33B1225950027"

    static func programs() throws -> ProgramSet {
        let directory = try senderTemporaryDirectory("relay-messages")
        defer { try? FileManager.default.removeItem(at: directory) }
        let config = directory.appendingPathComponent("site.yaml")
        try """
            root_topic: kpm33b
            default_pack: kpm37

            """.write(to: config, atomically: true, encoding: .utf8)
        return try Site.load(rules: senderPackageRoot.appendingPathComponent("rules").path, config: config.path).programs
    }

    @Test func requestAndStateRoundTrip() throws {
        let programs = try Self.programs()
        for value in ["ON", "OFF"] {
            let request = RelayRequest(meter: Self.meter, command: "switch_relay", value: value)
            let topic = try #require(request.topic(in: programs))
            #expect(topic == "kpm33b/\(Self.meter)/relay/set")
            #expect(try RelayRequest(topic: topic, payload: request.payload, programs: programs) == request)

            let state = RelayState(meter: Self.meter, command: "switch_relay", value: value)
            let stateTopic = try #require(state.topic(in: programs))
            #expect(stateTopic == "kpm33b/\(Self.meter)/relay")
            #expect(state.payload == Array(value.utf8))
            #expect(RelayState(topic: stateTopic, payload: state.payload, programs: programs) == state)
        }
        // Not a state: another topic, a value the request does not have, a cleared state.
        #expect(RelayState(topic: "kpm33b/\(Self.meter)/relay/set", payload: Array("ON".utf8), programs: programs) == nil)
        #expect(RelayState(topic: "kpm33b/\(Self.meter)/relay", payload: Array("MAYBE".utf8), programs: programs) == nil)
        #expect(RelayState(topic: "kpm33b/\(Self.meter)/relay", payload: [], programs: programs) == nil)
        // A meter whose pack has no request command has no request topic.
        #expect(RelayRequest(meter: Self.kpm33b, command: "switch_relay", value: "ON").topic(in: programs) == nil)
    }

    /// Every malformed request with the reason it is refused for.
    static let malformed: [(topic: String, payload: [UInt8], reason: RelayRequest.Refusal.Reason)] = [
        ("kpm33b/\(meter)/relay/set", Array("MAYBE".utf8), .badValue),
        ("kpm33b/\(meter)/relay/set", Array("on".utf8), .badValue),
        ("kpm33b/\(meter)/relay/set", Array(#"{"state":"ON"}"#.utf8), .wrongType),
        ("kpm33b/\(meter)/relay/set", Array(#""ON""#.utf8), .wrongType),
        ("kpm33b/\(meter)/relay/set", [], .wrongType),
        ("kpm33b/\(meter)/relay/set", [0x4F, 0xFF, 0xFE], .wrongType),  // not UTF-8
        ("kpm33b/\(kpm33b)/relay/set", Array("ON".utf8), .unknownMeter),  // its pack has no relay
        ("kpm33b/\(meter)/relay/toggle", Array("ON".utf8), .unknownMeter),
        ("kpm33b/\(meter)/relay", Array("ON".utf8), .unknownMeter),  // the state topic
        ("other/\(meter)/relay/set", Array("ON".utf8), .unknownMeter),
    ]

    @Test func aMalformedRequestIsRefusedWithANamedReason() throws {
        let programs = try Self.programs()
        for m in Self.malformed {
            #expect(throws: RelayRequest.Refusal.self, "\(m.topic) \(m.payload)") {
                try RelayRequest(topic: m.topic, payload: m.payload, programs: programs)
            }
            do {
                _ = try RelayRequest(topic: m.topic, payload: m.payload, programs: programs)
            } catch {
                #expect(error.reason == m.reason, "\(m.topic) \(m.payload)")
            }
        }
    }

    /// `RelayRequests` counts each refusal by its reason, logs it, and sends nothing.
    @Test func aMalformedRequestIsCountedAndNeverSent() throws {
        let programs = try Self.programs()
        var requests = RelayRequests()
        let now = ConfigTime(testing: senderT0)
        var ids = 0
        for m in Self.malformed {
            let actions = requests.request(topic: m.topic, payload: m.payload, programs: programs, isKnown: { _ in true },
                                           operationID: { ids += 1; return "op\(ids)" }, timeoutSeconds: 5, now: now)
            #expect(actions.count == 1)
            guard case .log(let event) = actions.first else { Issue.record("not a log: \(actions)"); continue }
            #expect(event.name == "request_rejected")
        }
        #expect(ids == 0)
        #expect(requests.inFlight.isEmpty)
        for reason in [RelayRequest.Refusal.Reason.badValue, .wrongType, .unknownMeter] {
            #expect(requests.counters[reason.rawValue] == Self.malformed.filter { $0.reason == reason }.count)
        }
        #expect(requests.counters["accepted"] == 0)

        // A good one goes out: the pack's command, awaiting its reply.
        let good = RelayRequest(meter: Self.meter, command: "switch_relay", value: "ON")
        let actions = requests.request(topic: try #require(good.topic(in: programs)), payload: good.payload, programs: programs,
                                       isKnown: { _ in true }, operationID: { "0123456789abcdef0123456789abcdef" },
                                       timeoutSeconds: 5, now: now)
        #expect(actions.contains { if case .send(let message) = $0 { message.topic == "MQTT_TELECTRL_25950001" } else { false } })
        #expect(requests.inFlight.values.map(\.state) == [RelayState(meter: Self.meter, command: "switch_relay", value: "ON")])
        #expect(requests.counters["accepted"] == 1)
    }
}
