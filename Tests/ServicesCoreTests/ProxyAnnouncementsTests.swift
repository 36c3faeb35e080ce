import Foundation
import Clock
import RuleEngine
import Testing
@testable import Services
@testable import ServicesFixtures

// The announcements' state machine on its own: events in, the returned
// actions checked, no broker (the engine and ledger are real).

@Suite struct ProxyAnnouncementsTests {
    let meter = "33B1225950027"

    /// The engine's announcements of `id` (its first reading), as the core hands them over.
    func engineAnnouncements(_ f: CoreFixture, id: String) throws -> (discovery: Outgoing?, homeAssistant: [Outgoing]?) {
        let payload = Array(try ProxyHarness.rtData(second: 0, id: id).utf8)
        var out = ProcessOutput()
        payload.withUnsafeBytes { f.core.engine.process(topic: "MQTT_RT_DATA", payload: $0, now: Instant(epochMillis: 1_768_235_940_000), into: &out) }
        let discovery = out.messages.first { $0.kind == .discovery }
        let configs = out.messages.filter { $0.kind == .homeAssistant }
        return (discovery, configs.isEmpty ? nil : configs)
    }

    func names(_ actions: [ProxyAction]) -> [String] {
        actions.map {
            switch $0 {
            case .log(let event, _): "log \(event.name)"
            case .append(let message): "append \(message.topic)"
            case .publishInternal(let message): "internal \(message.topic)"
            case .publishCentral(let topic, _): "central \(topic)"
            case .internalReading(let on): "reading \(on)"
            case .internalWrites(let on): "writes \(on)"
            }
        }
    }

    @Test func announcementsWaitForTheReadBackThenConvergeMeterByMeter() throws {
        let f = try CoreFixture()
        let announcements = f.core.announcements
        let (discovery, configs) = try engineAnnouncements(f, id: meter)
        let parked = announcements.engineAnnounced(id: meter, discovery: discovery, homeAssistant: configs)
        #expect(names(parked) == ["internal kpm33b/discovery/\(meter)"], "the internal copy goes at once, the central one waits")
        announcements.centralConnected()
        let token = announcements.subscriptionsSettled(at: f.clock)
        #expect(names(token) == ["central kpm33b/proxy/read-back"])
        let finished = Array("kpm33b-proxy 1".utf8).withUnsafeBytes { announcements.readBackEcho($0) }
        #expect(names(finished) == ["log discovery_read_back"])
        #expect(announcements.hasPending)
        let first = try #require(announcements.nextPending())
        #expect(names(first) == ["append kpm33b/discovery/\(meter)"])
        #expect(announcements.announced == [meter])
        #expect(announcements.nextPending() == nil)
        // Ready: the next announcement goes through the ledger at once, and the broker has it already.
        #expect(announcements.engineAnnounced(id: meter, discovery: discovery, homeAssistant: configs).count == 1)
    }

    @Test func aMeterOwnedByAnotherInstanceIsLeftToItUntilItsOwnerGoesOfflineOrDeclaresItSilent() throws {
        let f = try CoreFixture()
        let announcements = f.core.announcements
        announcements.centralConnected()
        announcements.observed(topic: "kpm33b/discovery/\(meter)", payload: Array(#"{"id":"\#(meter)","pack":"kpm33b","instance":"a"}"#.utf8))
        _ = announcements.readBackFinished()
        while announcements.nextPending() != nil {}
        #expect(announcements.peerStatus(instance: "a", PeerStatus(online: true)).isEmpty)
        let (discovery, configs) = try engineAnnouncements(f, id: meter)
        let owned = announcements.engineAnnounced(id: meter, discovery: discovery, homeAssistant: configs)
        #expect(names(owned) == ["internal kpm33b/discovery/\(meter)", "log meter_owned_elsewhere"])
        #expect(announcements.ownedElsewhere == 1)
        let takenOver = announcements.peerStatus(instance: "a", PeerStatus(online: false))
        #expect(names(takenOver) == ["log meter_taken_over", "append kpm33b/discovery/\(meter)"])
        guard case .log(let event, _) = takenOver[0] else { return }
        #expect(event["reason"] == "its owner is offline")
        // Another meter of an online owner, declared silent by it.
        let other = "33B1225950028"
        #expect(announcements.peerStatus(instance: "a", PeerStatus(online: true)).isEmpty)
        announcements.observed(topic: "kpm33b/discovery/\(other)", payload: Array(#"{"id":"\#(other)","pack":"kpm33b","instance":"a"}"#.utf8))
        let (otherDiscovery, otherConfigs) = try engineAnnouncements(f, id: other)
        #expect(names(announcements.engineAnnounced(id: other, discovery: otherDiscovery, homeAssistant: otherConfigs)).contains("log meter_owned_elsewhere"))
        let silent = announcements.meterSilence(id: other, MeterSilence(instance: "a", lastSeen: nil))
        #expect(names(silent) == ["log meter_taken_over", "append kpm33b/discovery/\(other)"])
    }

    @Test func withoutAnEchoTheReadBackGoesOnAfterItsTimeout() throws {
        let f = try CoreFixture()
        let announcements = f.core.announcements
        announcements.centralConnected()
        _ = announcements.subscriptionsSettled(at: f.clock)
        #expect(announcements.tick(at: f.clock.adding(seconds: 1)).isEmpty)
        #expect(!announcements.ledgerReady)
        let late = announcements.tick(at: f.clock.adding(seconds: ProxyReadBack.timeoutSeconds))
        #expect(names(late) == ["log read_back_incomplete", "log discovery_read_back"])
        #expect(announcements.ledgerReady)
    }
}
