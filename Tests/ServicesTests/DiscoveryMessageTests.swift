import Foundation
import JSON
import RuleEngine
import Testing
import TestSupport
@testable import Services
@testable import ServicesFixtures

/// The discovery message: one type, written by the engine and read by the
/// services, and the discovery topics of every pack followed.
@Suite(.serialized) struct DiscoveryMessageTests {
    /// What the engine writes, the services read back field for field.
    @Test func theWriterAndTheParserRoundTrip() {
        let full = DiscoveryMessage(
            id: "33B1225950027", manufacturer: "Compere", model: "KPM33B", pack: "kpm33b", instance: "north",
            context: "garage \"east\"", topics: [.init(name: "seconds", topic: "kpm33b/33B1225950027/seconds"),
                                                  .init(name: "minutes", topic: "kpm33b/33B1225950027/minutes")],
            clockOffsetSeconds: -123_456)
        let minimal = DiscoveryMessage(id: "33B1225950028")
        for message in [full, minimal] {
            #expect(DiscoveryMessage.parse(topic: "kpm33b/discovery/\(message.id)", payload: message.payload) == .meter(message))
        }
        #expect(String(decoding: minimal.payload, as: UTF8.self) == #"{"id":"33B1225950028","topics":{}}"#)
        // The fields in the order the goldens hold.
        #expect(String(decoding: full.payload, as: UTF8.self).hasPrefix(
            #"{"id":"33B1225950027","manufacturer":"Compere","model":"KPM33B","pack":"kpm33b","instance":"north","#))
        #expect(DiscoveryMessage.parse(topic: "kpm33b/discovery/33B1225950027", payload: []) == .removed(id: "33B1225950027"))
        if case .invalid = DiscoveryMessage.parse(topic: "kpm33b/discovery/33B1225950099", payload: full.payload) {} else {
            Issue.record("an id that disagrees with the topic is refused")
        }
        if case .invalid = DiscoveryMessage.parse(topic: "kpm33b/discovery/", payload: full.payload) {} else {
            Issue.record("a topic without an id is refused")
        }
    }

    /// The engine's discovery message is the type's writer: the proxy's
    /// announcement parses back to the meter, its pack and its topics.
    @Test func theEnginesAnnouncementParses() throws {
        let site = try buildSenderSite(senderConfigText())
        let engine = Engine(program: site.program, origin: Origin(name: "test", version: "0"))
        let reading = try String(contentsOf: senderPackageRoot.appendingPathComponent("rules/kpm33b/samples/MQTT_RT_DATA.json"),
                                 encoding: .utf8)
        let output = engine.process(topic: "MQTT_RT_DATA", payload: Array(reading.utf8), now: Instant(epochMillis: 1_768_237_200_000))
        let discovery = try #require(output.messages.first { $0.kind == .discovery })
        guard case .meter(let message) = DiscoveryMessage.parse(topic: discovery.topic, payload: discovery.payload) else {
            Issue.record("the engine's discovery message does not parse")
            return
        }
        #expect(message.id == senderMeterA && message.pack == "kpm33b" && message.model == "KPM33B")
        #expect(message.topics.map(\.name) == ["seconds", "minutes"])
        #expect(message.payload == discovery.payload)
    }

    /// Two packs whose discovery topics differ: config-sender follows both
    /// (it used to subscribe to the first pack's only, and the other pack's
    /// meters were never configured).
    @Test func configSenderFollowsEveryPacksDiscoveryTopic() throws {
        let h = try SenderHarness(name: "two-discovery-topics")
        let rules = h.directory.appendingPathComponent("rules")
        try FileManager.default.createDirectory(at: rules, withIntermediateDirectories: true)
        for pack in ["kpm33b", "kpm37"] {
            try FileManager.default.copyItem(at: senderPackageRoot.appendingPathComponent("rules/\(pack)"),
                                             to: rules.appendingPathComponent(pack))
        }
        let kpm37 = rules.appendingPathComponent("kpm37/pack.yaml")
        let text = try String(contentsOf: kpm37, encoding: .utf8)
        let moved = text.replacingOccurrences(of: #"topic: "{root}/discovery/{id}""#, with: #"topic: "{root}/announce/{id}""#)
        try #require(moved != text)
        try moved.write(to: kpm37, atomically: true, encoding: .utf8)
        h.rules = rules.path
        try h.writeConfig(extra: "default_pack: kpm37\n")
        let kpm37Meter = "37A1225950001"
        let meters = try FakeMeters(broker: h.internalBroker, meters: [senderMeterA: .answer, kpm37Meter: .answer])
        try h.discover(senderMeterA)
        try h.publishRetained(topic: "kpm33b/announce/\(kpm37Meter)", payload: DiscoveryMessage(id: kpm37Meter, pack: "kpm37").payload)
        try h.start()
        #expect(senderEventually(timeout: 30) { !meters.commands(for: kpm37Meter).isEmpty && !meters.commands(for: senderMeterA).isEmpty },
                "\(h.log)")
        #expect(h.lines("started").first?.contains("kpm33b/announce/+") == true)
        #expect(h.stop() == 0)
    }
}
