import Foundation
import RuleEngine
@testable import Services
import Testing

/// The outbox against a fake connection that records what it is handed.
@Suite struct OutboxTests {
    final class FakeConnection: @unchecked Sendable {
        let lock = NSLock()
        var sent: [(mid: Int32, topic: String)] = []
        var nextID: Int32 = 1

        func publish(_ message: Outgoing) -> Int32? {
            lock.withLock {
                defer { nextID += 1 }
                sent.append((nextID, message.topic))
                return nextID
            }
        }

        var topics: [String] { lock.withLock { sent.map(\.topic) } }
    }

    func messages(_ range: Range<Int>) -> [Outgoing] {
        range.map { Outgoing(topic: "t/\($0)", payload: [], retain: false, kind: .data) }
    }

    @Test func holdsEverythingWhileDisconnectedAndDropsTheOldestWhenFull() {
        let fake = FakeConnection()
        let outbox = Outbox(limit: 3, publish: fake.publish)
        #expect(outbox.append(messages(0..<2)).isEmpty)
        #expect(outbox.append(messages(2..<5)).map { $0.topic } == ["t/0", "t/1"])
        #expect(outbox.queued == 3)
        #expect(fake.topics.isEmpty)
        outbox.setConnected(true)
        #expect(fake.topics == ["t/2", "t/3", "t/4"])
        #expect(outbox.queued == 0)
        #expect(outbox.pending == 3)
    }

    @Test func windowBoundsWhatIsUnacknowledgedAndEachAckHandsOverTheNext() {
        let fake = FakeConnection()
        let outbox = Outbox(limit: 100, window: 2, publish: fake.publish)
        outbox.setConnected(true)
        _ = outbox.append(messages(0..<5))
        #expect(fake.topics == ["t/0", "t/1"])
        #expect(outbox.acknowledged(1)?.topic == "t/0")
        #expect(fake.topics == ["t/0", "t/1", "t/2"])
        // An id that is not ours changes nothing.
        #expect(outbox.acknowledged(99) == nil)
        #expect(fake.topics.count == 3)
        // Lost connection: nothing new is handed over; what was handed over stays in flight.
        outbox.setConnected(false)
        #expect(outbox.acknowledged(2)?.topic == "t/1")
        #expect(fake.topics.count == 3)
        outbox.setConnected(true)
        #expect(fake.topics.count == 3)  // t/2 is sent again by libmosquitto first
        #expect(outbox.acknowledged(3)?.topic == "t/2")
        #expect(fake.topics == ["t/0", "t/1", "t/2", "t/3", "t/4"])
        #expect(outbox.pending == 2)
    }

    /// libmosquitto sends unacknowledged messages again after the connect
    /// callback: nothing new may overtake them.
    @Test func afterAReconnectNothingNewUntilTheOldAreAcknowledged() {
        let fake = FakeConnection()
        let outbox = Outbox(limit: 100, window: 2, resendGraceSeconds: 0.2, publish: fake.publish)
        outbox.setConnected(true)
        _ = outbox.append(messages(0..<2))
        outbox.setConnected(false)
        _ = outbox.append(messages(2..<4))
        outbox.setConnected(true)
        #expect(fake.topics == ["t/0", "t/1"])
        _ = outbox.acknowledged(1)
        #expect(fake.topics == ["t/0", "t/1"])
        _ = outbox.acknowledged(2)
        #expect(fake.topics == ["t/0", "t/1", "t/2", "t/3"])
        // Old ones never acknowledged: the hold ends after the grace period.
        outbox.setConnected(false)
        _ = outbox.append(messages(4..<5))
        outbox.setConnected(true)
        outbox.poke()
        #expect(fake.topics.count == 4)
        usleep(250_000)
        outbox.poke()
        #expect(fake.topics.count == 4)  // the window is still full (t/2, t/3)
        _ = outbox.acknowledged(3)
        #expect(fake.topics == ["t/0", "t/1", "t/2", "t/3", "t/4"])
    }

    @Test func drainWaitsForAcknowledgements() {
        let fake = FakeConnection()
        let outbox = Outbox(limit: 100, publish: fake.publish)
        outbox.setConnected(true)
        _ = outbox.append(messages(0..<3))
        #expect(!outbox.waitUntilDrained(deadline: Date(timeIntervalSinceNow: 0.05)))
        DispatchQueue.global().asyncAfter(deadline: .now() + 0.05) {
            for mid in Int32(1)...3 { _ = outbox.acknowledged(mid) }
        }
        #expect(outbox.waitUntilDrained(deadline: Date(timeIntervalSinceNow: 5)))
        let control = outbox.publishControl { 42 }
        #expect(control == 42)
        #expect(outbox.acknowledged(42) == nil)
        #expect(outbox.waitForAcknowledgement(42, deadline: Date()))
    }
}
