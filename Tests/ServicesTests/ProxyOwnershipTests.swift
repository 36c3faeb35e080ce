import Foundation
import Testing
@testable import Services

// Ownership between instances: the rule, from parsed statuses, with no broker.

@Suite struct ProxyOwnershipTests {
    let meter = "33B1225950027"

    func status(_ json: String, maxMeters: Int = 100) -> PeerStatus? {
        PeerStatus(document: Array(json.utf8), maxMeters: maxMeters)
    }

    @Test func aStatusDocumentIsParsedIntoWhatOwnershipNeeds() throws {
        let parsed = try #require(status(#"""
            {"state":"online","started":"2026-01-12T16:00:00Z","time":"2026-01-12T16:40:00Z",
             "meters":{"33B1225950027":"2026-01-12T16:39:00Z","33B1225950028":"not a time"}}
            """#))
        #expect(parsed.online)
        #expect(parsed.started == 1_768_233_600)
        #expect(parsed.time == 1_768_236_000)
        #expect(parsed.lastSeen == ["33B1225950027": 1_768_235_940])
        #expect(status(#"{"state":"offline"}"#) == PeerStatus(online: false, time: 0, started: 0, lastSeen: [:]))
        #expect(status("not json") == nil)
        #expect(status("[1,2]") == nil)
        let many = (0..<6).map { #""33B\#(3_000_000_000 + $0)":"2026-01-12T16:00:00Z""# }.joined(separator: ",")
        #expect(status(#"{"state":"online","meters":{\#(many)}}"#, maxMeters: 3)?.lastSeen.count == 3)
    }

    @Test func aMeterOfNoOtherInstanceIsMine() {
        let ownership = ProxyOwnership()
        #expect(ownership.verdict(owner: nil, meter: meter, silenceAllowed: 60, heard: false) == .mine)
    }

    @Test func anotherInstancesMeterThisProxyDoesNotHearStaysUntouched() {
        let ownership = ProxyOwnership()
        #expect(ownership.verdict(owner: "a", meter: meter, silenceAllowed: 60, heard: false) == .untouched)
    }

    @Test func aMeterIsTakenOverWhenItsOwnerIsGoneOfflineOrDeaf() throws {
        var ownership = ProxyOwnership()
        #expect(ownership.verdict(owner: "a", meter: meter, silenceAllowed: 60, heard: true)
            == .takenOver(from: "a", reason: "its owner has no status"))
        ownership.peerStatus(instance: "a", status(#"{"state":"offline"}"#))
        #expect(ownership.verdict(owner: "a", meter: meter, silenceAllowed: 60, heard: true)
            == .takenOver(from: "a", reason: "its owner is offline"))
        // Heard 60 s before the owner's status: within a 60 s silence, still the owner's.
        let online = #"{"state":"online","started":"2026-01-12T16:00:00Z","time":"TIME","meters":{"33B1225950027":"2026-01-12T16:39:00Z"}}"#
        ownership.peerStatus(instance: "a", status(online.replacingOccurrences(of: "TIME", with: "2026-01-12T16:40:00Z")))
        #expect(ownership.verdict(owner: "a", meter: meter, silenceAllowed: 60, heard: true) == .ownedElsewhere(owner: "a"))
        #expect(ownership.verdict(owner: "a", meter: meter, silenceAllowed: nil, heard: true) == .ownedElsewhere(owner: "a"))
        // 61 s: the owner's entities show it unavailable anyway.
        ownership.peerStatus(instance: "a", status(online.replacingOccurrences(of: "TIME", with: "2026-01-12T16:40:01Z")))
        #expect(ownership.verdict(owner: "a", meter: meter, silenceAllowed: 60, heard: true)
            == .takenOver(from: "a", reason: "its owner has not heard from it for 61 s"))
        // A meter the owner never named counts from the owner's start.
        #expect(ownership.verdict(owner: "a", meter: "33B1225950028", silenceAllowed: 60, heard: true)
            == .takenOver(from: "a", reason: "its owner has not heard from it for 2401 s"))
        // The status gone (an empty retained message): no status.
        ownership.peerStatus(instance: "a", nil)
        #expect(ownership.meterCount(instance: "a") == 0)
        #expect(ownership.verdict(owner: "a", meter: meter, silenceAllowed: 60, heard: true)
            == .takenOver(from: "a", reason: "its owner has no status"))
    }
}
