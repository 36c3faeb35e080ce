import Foundation
import Testing
@testable import Services
@testable import ServicesFixtures

// Ownership between instances: the rule, from parsed statuses, with no broker.

@Suite struct ProxyOwnershipTests {
    let meter = "33B1225950027"

    func status(_ json: String) -> PeerStatus? {
        PeerStatus(document: Array(json.utf8))
    }

    @Test func aStatusDocumentIsParsedIntoWhatOwnershipNeeds() throws {
        var online = ProxyStatus(state: "online")
        online.started = "2026-01-12T16:00:00Z"
        online.metersSeen = 20_000
        #expect(PeerStatus(document: online.payload) == PeerStatus(online: true))
        #expect(status(#"{"state":"offline"}"#) == PeerStatus(online: false))
        #expect(status("not json") == nil)
        #expect(status("[1,2]") == nil)
        #expect(status("") == nil)
    }

    @Test func aMeterOfNoOtherInstanceIsMine() {
        let ownership = ProxyOwnership()
        #expect(ownership.verdict(owner: nil, meter: meter, heard: false) == .mine)
    }

    @Test func anotherInstancesMeterThisProxyDoesNotHearStaysUntouched() {
        let ownership = ProxyOwnership()
        #expect(ownership.verdict(owner: "a", meter: meter, heard: false) == .untouched)
    }

    @Test func aMeterIsTakenOverWhenItsOwnerIsGoneOfflineOrDeclaresItSilent() throws {
        var ownership = ProxyOwnership()
        #expect(ownership.verdict(owner: "a", meter: meter, heard: true)
            == .takenOver(from: "a", reason: "its owner has no status"))
        ownership.peerStatus(instance: "a", status(#"{"state":"offline"}"#))
        #expect(ownership.verdict(owner: "a", meter: meter, heard: true)
            == .takenOver(from: "a", reason: "its owner is offline"))
        ownership.peerStatus(instance: "a", status(#"{"state":"online"}"#))
        #expect(ownership.verdict(owner: "a", meter: meter, heard: true) == .ownedElsewhere(owner: "a"))
        // Another instance's word on a's meter changes nothing; a's own does.
        #expect(ownership.meterSilence(id: meter, MeterSilence(instance: "c", lastSeen: nil), instance: "b") == "c")
        #expect(ownership.verdict(owner: "a", meter: meter, heard: true) == .ownedElsewhere(owner: "a"))
        #expect(ownership.meterSilence(id: meter, MeterSilence(instance: "a", lastSeen: "2026-01-12T16:39:00Z"), instance: "b") == "a")
        #expect(ownership.verdict(owner: "a", meter: meter, heard: true)
            == .takenOver(from: "a", reason: "its owner has not heard from it for longer than its allowed silence"))
        // a hears it again (its declaration cleared): a's again.
        #expect(ownership.meterSilence(id: meter, nil, instance: "b") == nil)
        #expect(ownership.verdict(owner: "a", meter: meter, heard: true) == .ownedElsewhere(owner: "a"))
        // The status gone (an empty retained message): no status.
        ownership.peerStatus(instance: "a", nil)
        #expect(ownership.verdict(owner: "a", meter: meter, heard: true)
            == .takenOver(from: "a", reason: "its owner has no status"))
    }

    /// This proxy's own declarations: said once, cleared once; those that
    /// come back from the broker (a restart) are cleared when no longer true;
    /// other instances' are kept up to the meter limit.
    @Test func declarationsAreSaidOnceAndBounded() {
        var ownership = ProxyOwnership(maxMeters: 3)
        #expect(ownership.declare(silent: [meter]) == (declare: [meter], clear: []))
        #expect(ownership.declare(silent: [meter]) == (declare: [], clear: []))
        #expect(ownership.declare(silent: []) == (declare: [], clear: [meter]))
        #expect(ownership.meterSilence(id: "33B1225950028", MeterSilence(instance: "b", lastSeen: nil), instance: "b") == nil)
        #expect(ownership.declare(silent: []) == (declare: [], clear: ["33B1225950028"]))
        for i in 0..<6 { _ = ownership.meterSilence(id: "33B\(3_000_000_000 + i)", MeterSilence(instance: "a", lastSeen: nil), instance: "b") }
        #expect(ownership.silentElsewhereCount == 3)
    }
}
