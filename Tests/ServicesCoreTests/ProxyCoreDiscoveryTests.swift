import Foundation
import RuleEngine
import SiteSettings
import Testing
@testable import Services
@testable import ServicesFixtures

/// The proxy core's copy of discovery messages on the internal broker
/// (`proxy.discovery_on_internal`), with the recording transport.
@Suite struct ProxyCoreDiscoveryTests {
    static let topic = "kpm33b/discovery/33B1225950027"

    @Test func theCopyGoesOutAtOnceEvenWhileTheCentralBrokerIsAway() throws {
        let f = try CoreFixture()
        try f.receive(second: 0)
        // Produced, not yet on the central side (it is away): the copy is already queued.
        #expect(f.transport.published.isEmpty)
        let copy = try #require(f.transport.internalPublished.first)
        #expect(f.transport.internalPublished.count == 1)
        #expect(copy.topic == Self.topic && copy.retain)
        #expect(copy.payload.hasPrefix(#"{"id":"33B1225950027","manufacturer":"Compere","model":"KPM33B","pack":"kpm33b","topics":{"#))

        // Readings are not copied; a known meter is not announced again.
        try f.receive(second: 1)
        #expect(f.transport.internalPublished.count == 1)

        // The central broker gets the same message from the journal when it is back.
        f.connectCentral()
        f.endIteration()
        let central = try #require(f.transport.published.first { $0.topic == Self.topic })
        #expect(central.payload == copy.payload && central.retain)
    }

    @Test func aChangedClockOffsetIsCopiedToo() throws {
        let f = try CoreFixture()
        f.connectCentral()
        // The reading says 16:00:00, the proxy's clock 16:39:00: reported.
        try f.receive(second: 0)
        #expect(f.transport.internalPublished.first?.payload.hasSuffix(#"},"clock_offset_s":-2340}"#) == true)
        // The meter's clock was set: announced again, without the offset.
        try f.receive(second: 2340)
        f.endIteration()
        #expect(f.transport.internalPublished.count == 2)
        let changed = try #require(f.transport.internalPublished.last)
        #expect(changed.payload.hasSuffix(#""minutes":"kpm33b/33B1225950027/minutes"}}"#))
        #expect(f.transport.published.filter { $0.topic == Self.topic }.map(\.payload)
                == f.transport.internalPublished.map(\.payload))
    }

    @Test func theSwitchTurnsTheCopyOff() throws {
        let f = try CoreFixture()
        f.core.settings.discoveryOnInternal = false
        f.connectCentral()
        try f.receive(second: 0)
        f.endIteration()
        #expect(f.transport.internalPublished.isEmpty)
        #expect(f.transport.published.contains { $0.topic == Self.topic })
    }

    /// A reload that excludes a meter withdraws its discovery on both brokers
    /// (an empty retained message: config-sender forgets the meter).
    @Test func excludingAMeterClearsItsDiscoveryOnBothBrokers() throws {
        let f = try CoreFixture()
        f.connectCentral()
        try f.receive(second: 0)
        try f.receive(second: 0, id: "33B1225950028")
        f.endIteration()
        f.acknowledgeAll()
        #expect(f.transport.internalPublished.count == 2)

        let excluding = try loadProgram("""
            root_topic: kpm33b
            homeassistant: { enabled: false }
            exclude: ["33B1225950027"]

            """, in: f.directory, file: "excluding.yaml")
        f.core.reload(ProgramSet(single: excluding), now: Instant(epochMillis: 1_768_235_950_000))
        f.endIteration()
        let copy = try #require(f.transport.internalPublished.last)
        #expect(f.transport.internalPublished.count == 3)
        #expect(copy == .init(mid: 0, topic: Self.topic, payload: "", retain: true))
        let central = try #require(f.transport.published.last)
        #expect(central.topic == Self.topic && central.payload.isEmpty && central.retain)
    }
}
