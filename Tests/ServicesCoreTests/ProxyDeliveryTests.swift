import Foundation
import Journal
import Clock
import MQTT
import RuleEngine
import Testing
@testable import Services
@testable import ServicesFixtures

// The delivery's state machine on its own: a real journal, a recording
// publisher, the returned actions checked; no broker.

@Suite struct ProxyDeliveryTests {
    final class Fixture {
        let directory: String
        let delivery: ProxyDelivery
        let publisher = RecordingTransport()
        var clock = MonotonicInstant(nanoseconds: 1_000_000_000)

        init(maxBytes: Int = 1 << 30) throws {
            directory = try senderTemporaryDirectory("delivery").path
            let journal = try Journal(directory: directory + "/journal", maxBytes: maxBytes,
                                      segmentBytes: JournalSettings(maxBytes: maxBytes, fsync: .never).segmentBytes, fsync: .never)
            delivery = ProxyDelivery(journal: journal, settings: .init(maxPayloadBytes: 4096))
            delivery.deadLetters = DeadLetters(directory: directory)
        }

        /// One message's record; the actions `appended` returned.
        func append(bytes: Int = 500) -> [ProxyAction] {
            let before = delivery.journal.bytes
            _ = delivery.journal.append(topic: Array("kpm33b/m/seconds".utf8), payload: [UInt8](repeating: 0x31, count: bytes),
                                        retain: false, kind: JournalKind.data, now: 0)
            return delivery.appended(bytes: delivery.journal.bytes - before)
        }

        func endIteration(after seconds: Double = 0) -> [ProxyAction] {
            clock = clock.adding(seconds: seconds)
            return delivery.endOfIteration(at: clock, publisher: publisher)
        }

        deinit { try? FileManager.default.removeItem(atPath: directory) }
    }

    @Test func readingsTakeNoActionOnTheWayOut() throws {
        let f = try Fixture()
        #expect(f.append().isEmpty)
        #expect(f.endIteration().isEmpty, "nothing sent while the central broker is away")
        #expect(f.publisher.published.isEmpty)
        f.delivery.centralConnectionChanged(true, at: f.clock)
        #expect(f.endIteration().isEmpty)
        #expect(f.publisher.published.count == 1)
        #expect(f.delivery.acknowledged(1, wallClock: Instant(epochMillis: 0)).isEmpty)
        #expect(f.delivery.counts.forwarded == 1)
        #expect(f.endIteration().isEmpty)
        #expect(f.delivery.isDrained)
    }

    /// The central connection's window (MQTT 5's Receive Maximum) caps the
    /// records in flight, the rest waiting in the journal; while records wait
    /// for it, the delivery says so (`awaitsWindow`: the loop's coalescing
    /// wait then ends at the next PUBACK), and not once they all went out.
    @Test func theConnectionsWindowCapsRecordsInFlightAndTheRestAwaitIt() throws {
        let f = try Fixture()
        f.publisher.sendWindow = 3
        for _ in 0..<5 { _ = f.append() }
        f.delivery.centralConnectionChanged(true, at: f.clock)
        _ = f.endIteration()
        #expect(f.publisher.published.map(\.mid) == [1, 2, 3])
        #expect(f.delivery.awaitsWindow)
        _ = f.delivery.acknowledged(1, wallClock: Instant(epochMillis: 0))
        _ = f.endIteration()
        #expect(f.publisher.published.map(\.mid) == [1, 2, 3, 4], "one PUBACK, one more record")
        #expect(f.delivery.awaitsWindow)
        _ = f.delivery.acknowledged(2, wallClock: Instant(epochMillis: 0))
        _ = f.endIteration()
        #expect(f.publisher.published.count == 5)
        #expect(!f.delivery.awaitsWindow, "the window is full, but nothing waits for it")
        for mid in Int32(3)...5 { _ = f.delivery.acknowledged(mid, wallClock: Instant(epochMillis: 0)) }
        _ = f.endIteration()
        #expect(!f.delivery.awaitsWindow)
        #expect(f.delivery.counts.forwarded == 5)
        #expect(f.delivery.isDrained)
    }

    @Test func aFullJournalStopsReadingAtOnceAndResumesUnderNinetyPercent() throws {
        let f = try Fixture(maxBytes: 1 << 20)
        var actions: [ProxyAction] = []
        while actions.isEmpty { actions = f.append(bytes: 1000) }
        #expect(actions.first == .internalReading(false))
        guard case .log(let on, _) = actions.last else { Issue.record("no log line"); return }
        #expect(on.name == "back_pressure_on")
        #expect(f.delivery.isBackPressureActive)
        #expect(f.append().isEmpty, "decided once")
        f.delivery.centralConnectionChanged(true, at: f.clock)
        var resumed: [ProxyAction] = []
        while resumed.isEmpty {
            _ = f.endIteration(after: 0.1)
            for p in f.publisher.published { _ = f.delivery.acknowledged(p.mid, wallClock: Instant(epochMillis: 0)) }
            f.publisher.published.removeAll()
            resumed = f.endIteration()
        }
        #expect(resumed.first == .internalReading(true))
        #expect(f.delivery.journal.bytes <= f.delivery.readLimit / 10 * 9)
    }

    @Test func refusalsComeBackAsRetriesOrDeadLetters() throws {
        let f = try Fixture()
        f.delivery.centralConnectionChanged(true, at: f.clock)
        _ = f.append()
        _ = f.endIteration()
        f.delivery.rejected(1, code: 0x97, reason: "Quota exceeded", at: f.clock)
        let retried = f.delivery.acknowledged(1, wallClock: Instant(epochMillis: 0))
        guard case .log(let refused, let limit) = retried.first, retried.count == 1 else { Issue.record("\(retried)"); return }
        #expect(refused.name == "publish_refused" && refused["retry_in_s"] == "1" && limit == "publish.refused")
        #expect(f.delivery.retryCount == 1)
        #expect(f.endIteration(after: 0.5).isEmpty && f.publisher.published.count == 1, "not before its back-off")
        #expect(f.endIteration(after: 0.6).isEmpty && f.publisher.published.count == 2)
        f.delivery.rejected(2, code: 0x87, reason: "Not authorized", at: f.clock)
        let dead = f.delivery.acknowledged(2, wallClock: Instant(epochMillis: 0))
        guard case .log(let letter, _) = dead.first else { Issue.record("\(dead)"); return }
        #expect(letter.name == "publish_dead_lettered")
        #expect(f.delivery.counts.deadLettered == 1 && f.delivery.deadLetterCount == 1)
        #expect(f.delivery.isDrained)
    }

    @Test func aPassingPublishFailureIsDeferredAndNamed() throws {
        let f = try Fixture()
        f.delivery.centralConnectionChanged(true, at: f.clock)
        _ = f.append()
        f.publisher.refuseNext = 1
        let deferred = f.endIteration()
        guard case .log(let event, let limit) = deferred.first else { Issue.record("\(deferred)"); return }
        #expect(event.name == "publish_deferred" && limit == "publish.retry")
        #expect(f.endIteration().isEmpty && f.publisher.published.count == 1)
    }
}
