import Foundation
import JSON
import MQTT
import RuleEngine
import Services
import SiteSettings
import Testing
import TestSupport
@testable import ServicesFixtures

/// A KPM37's relay output on the internal broker, as docs/protocol.md says: it
/// takes `{"do1":"1"|"0","oprid":…}` on `MQTT_TELECTRL_<last8>` and answers on
/// `MQTT_TELECTRL_REP` with `01`, `02`, or not at all.
final class FakeRelay: @unchecked Sendable {
    enum Behaviour: Sendable { case answer, fail, silent }
    let connection: TestClient
    let received = Recorder<JSONValue>()
    private let lock = NSLock()
    private var behaviour = Behaviour.answer
    let id: String

    init(broker: TestBroker, id: String) throws {
        self.id = id
        connection = try TestClient(endpoint: broker.endpoint, options: MQTTOptions(
            clientID: "fake-relay-\(UUID().uuidString.prefix(6))", reconnectMinSeconds: 0.1, reconnectMaxSeconds: 0.5))
        try connection.subscribe("MQTT_TELECTRL_\(id.suffix(8))", qos: 1)
        connection.onMessage = { [weak self] message in
            guard let self, let payload = try? JSONValue.parse(message.payload) else { return }
            self.received.append(payload)
            self.respond(payload)
        }
        try connection.start()
        guard connection.waitUntilSubscribed(timeout: 10) else { throw TestBroker.Failure.setup("fake relay did not subscribe") }
    }

    deinit { connection.stop() }

    func set(_ b: Behaviour) { lock.withLock { behaviour = b } }

    private func respond(_ command: JSONValue) {
        guard let oprid = command["oprid"]?.stringValue, oprid.utf8.count == 32 else { return }
        let code: String
        switch lock.withLock({ behaviour }) {
        case .silent: return
        case .answer: code = "01"
        case .fail: code = "02"
        }
        let reply: JSONObject = ["id": .string(id), "dox": "do1", "oprid": .string(oprid), "code": .string(code)]
        _ = try? connection.publish(topic: "MQTT_TELECTRL_REP", payload: JSONValue.object(reply).serialized(), qos: 1, retain: false)
    }
}

/// Relay control from Home Assistant, end to end on two real brokers: a
/// request on the central broker's clean command topic, config-sender (with
/// every pack under rules/, the meter a KPM37 by `default_pack`), the meter's
/// command and reply on the internal broker, the confirmed state back on the
/// central broker. Acknowledged, failed (02), timed out, and bad requests.
@Suite(.serialized) struct RelayIntegrationTests {
    static let meter = "37A1225950001"
    static let setTopic = "kpm33b/37A1225950001/relay/set"
    static let stateTopic = "kpm33b/37A1225950001/relay"

    /// config-sender with the KPM37 pack, a meter answering its commands and its
    /// relay, a subscriber to the relay state and the status, and Home Assistant's
    /// connection to the central broker (the caller stops it).
    static func relaySite(name: String) throws
        -> (SenderHarness, FakeMeters, FakeRelay, TestSubscriber, TestClient) {
        let h = try SenderHarness(name: name)
        h.rules = senderPackageRoot.appendingPathComponent("rules").path
        try h.writeConfig(extra: "default_pack: kpm37\n")
        let config = try FakeMeters(broker: h.internalBroker, meters: [meter: .answer])
        let relay = try FakeRelay(broker: h.internalBroker, id: meter)
        let central = try TestSubscriber(broker: h.centralBroker, filters: [stateTopic, "kpm33b/config-sender/status"])
        let homeAssistant = try TestClient(endpoint: h.centralBroker.endpoint, options: MQTTOptions(
            clientID: "ha-\(UUID().uuidString.prefix(6))", reconnectMinSeconds: 0.1, reconnectMaxSeconds: 0.5))
        try homeAssistant.start()
        guard homeAssistant.waitUntilConnected(timeout: 10) else {
            homeAssistant.stop()
            throw TestBroker.Failure.setup("Home Assistant's connection to the central broker did not come up")
        }
        return (h, config, relay, central, homeAssistant)
    }

    @Test func relayRequestsAckFailTimeoutAndBadCommands() throws {
        let (h, config, relay, central, homeAssistant) = try Self.relaySite(name: "relay")
        defer { homeAssistant.stop() }
        let programs = try h.programs()
        func request(_ value: String) throws {
            let request = RelayRequest(meter: Self.meter, command: "switch_relay", value: value)
            _ = try homeAssistant.publish(topic: try #require(request.topic(in: programs)), payload: request.payload, qos: 1, retain: false)
        }
        /// A malformed request, as is.
        func request(_ payload: String, topic: String) throws {
            _ = try homeAssistant.publish(topic: topic, payload: Array(payload.utf8), qos: 1, retain: false)
        }
        func states() -> [String] {
            central.messages.compactMap { RelayState(topic: $0.topic, payload: Array($0.payload), programs: programs)?.value }
        }
        /// An alert logs as `msg=ALERT event=NAME`.
        func alerts(_ name: String) -> [Substring] { h.currentRunLog.filter { $0.contains("msg=ALERT event=\(name) ") } }
        func lastStatus() -> JSONValue? {
            central.messages.last { $0.topic == "kpm33b/config-sender/status" }.flatMap { try? JSONValue.parse($0.payload) }
        }

        try h.discover(Self.meter)
        try h.start()
        // Configured like any meter (its pack's commands), then ready for requests.
        try #require(senderEventually { h.acknowledgedDate(Self.meter) != nil }, "\(h.log)")
        #expect(config.commands(for: Self.meter).count == 3)

        // 1. Acknowledged: the command as docs/protocol.md says, the confirmed state retained.
        try request("ON")
        try #require(senderEventually { states() == ["ON"] }, "\(h.log)")
        let sent = try #require(relay.received.values.first)
        #expect(sent["do1"]?.stringValue == "1")
        #expect(sent["oprid"]?.stringValue?.utf8.count == 32)
        #expect(sent.objectValue?.keys.sorted() == ["do1", "oprid"])
        #expect(h.lines("request_confirmed").count == 1)
        let retained = try TestSubscriber(broker: h.centralBroker, filters: [Self.stateTopic])
        #expect(retained.waitFor(count: 1).first.map { String(decoding: $0.payload, as: UTF8.self) } == "ON")
        retained.stop()

        // 2. Failure (02): the state stays ON, an alert is raised.
        relay.set(.fail)
        try request("OFF")
        try #require(senderEventually { alerts("request_failed").count == 1 }, "\(h.log)")
        #expect(relay.received.values.count == 2)
        #expect(relay.received.values.last?["do1"]?.stringValue == "0")
        try #require(senderEventually {
            lastStatus()?["alerts"]?.arrayValue?.contains { $0["command"]?.stringValue == "switch_relay" } == true
        }, "\(h.log)")

        // 3. Timeout: no reply within reply_timeout_s; the state stays, an alert again.
        relay.set(.silent)
        try request("OFF")
        try #require(senderEventually { alerts("request_timeout").count == 1 }, "\(h.log)")
        #expect(relay.received.values.count == 3)

        // 4. Bad requests: counted, logged, never sent to the meter.
        relay.set(.answer)
        try request("MAYBE", topic: Self.setTopic)
        try request(#"{"state":"ON"}"#, topic: Self.setTopic)
        try request("ON", topic: "kpm33b/37A9999999999/relay/set")
        try request("ON", topic: "kpm33b/33B1225950027/relay/set")
        try #require(senderEventually { h.lines("request_rejected").count == 4 }, "\(h.log)")
        let reasons = h.lines("request_rejected").compactMap { line in
            line.split(separator: " ").first { $0.hasPrefix("reason=") }.map { String($0.dropFirst(7)) }
        }
        #expect(reasons == ["bad_value", "wrong_type", "unknown_meter", "unknown_meter"])
        #expect(relay.received.values.count == 3)
        #expect(states() == ["ON"])

        // A good request afterwards clears the alert and confirms OFF.
        try request("OFF")
        try #require(senderEventually { states() == ["ON", "OFF"] }, "\(h.log)")
        try #require(senderEventually {
            guard let s = lastStatus(), let counts = s["requests"] else { return false }
            return counts["confirmed"]?.intValue == 2 && counts["failed"]?.intValue == 1 && counts["timeout"]?.intValue == 1
                && counts["bad_value"]?.intValue == 1 && counts["wrong_type"]?.intValue == 1 && counts["unknown_meter"]?.intValue == 2
                && s["alerts"]?.arrayValue?.isEmpty == true
        }, "\(String(decoding: central.messages.last?.payload ?? [], as: UTF8.self))")
        #expect(h.stop() == 0)
    }

    /// A request retained on the central broker — published with the retain
    /// flag while config-sender was down, or while it runs — is never carried
    /// out: not at start, not live, not at the next start. It is counted
    /// (`retained_ignored`) and logged; an ordinary request still works.
    @Test func retainedRequestsAreNeverCarriedOut() throws {
        let (h, config, relay, central, homeAssistant) = try Self.relaySite(name: "relay-retained")
        defer { homeAssistant.stop() }
        func request(_ payload: String, retain: Bool) throws {
            _ = try homeAssistant.publish(topic: Self.setTopic, payload: Array(payload.utf8), qos: 1, retain: retain)
        }
        func ignoredCount() -> Int64? {
            let status: JSONValue? = central.messages.last { $0.topic == "kpm33b/config-sender/status" }
                .flatMap { try? JSONValue.parse($0.payload) }
            guard let status, let counts = status["requests"] else { return nil }
            return counts["retained_ignored"]?.intValue
        }

        try h.discover(Self.meter)
        try request("ON", retain: true)  // while config-sender is down
        try h.start()
        try #require(senderEventually { h.acknowledgedDate(Self.meter) != nil }, "\(h.log)")
        #expect(config.commands(for: Self.meter).count == 3)
        try #require(senderEventually { h.lines("request_ignored").count == 1 }, "\(h.log)")
        #expect(h.lines("request_ignored").first?.contains("reason=retained") == true)
        try request("OFF", retain: true)  // while it runs
        try #require(senderEventually { h.lines("request_ignored").count == 2 }, "\(h.log)")
        try #require(senderEventually { ignoredCount() == 2 }, "\(h.log)")
        // An ordinary request is carried out.
        try request("ON", retain: false)
        try #require(senderEventually { h.lines("request_confirmed").count == 1 }, "\(h.log)")
        #expect(relay.received.values.map { $0["do1"]?.stringValue } == ["1"])
        #expect(h.stop() == 0)

        // The retained OFF is still on the broker: the next start ignores it again.
        try h.start()
        try #require(senderEventually { h.lines("request_ignored").count == 1 }, "\(h.log)")
        usleep(300_000)
        #expect(relay.received.values.count == 1)
        #expect(h.lines("request_sent").isEmpty)
        #expect(h.stop() == 0)
    }
}

extension SenderHarness {
    /// The packs and site config config-sender runs with (`rules`, `configFile`).
    func programs() throws -> ProgramSet { try Site.load(rules: rules, config: configFile.path).programs }
}
