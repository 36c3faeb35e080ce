import Foundation
import Glibc
import Clock
import MQTT
import Testing
import TestSupport

/// `EventLoop.coalescing`: sustained input is read in batches, complete and in
/// order, each wait within its bound; a slow input never waits.
@Suite(.serialized) struct EventLoopCoalescingTests {
    static let coalescing = EventLoop.Coalescing(maxDelay: 0.002, batch: 16)

    /// A subscriber on a coalescing loop, subscribed to `c` at QoS 1; what it
    /// receives: the sequence number and the latency from the publisher.
    private func subscriber(_ broker: TestBroker, _ fixture: TestLoop, coalescing: EventLoop.Coalescing?, qos: Int = 1,
                            _ received: Recorder<(Int, Double)>) throws -> MQTTClient {
        // As the services do: with libmosquitto's wake-up pair full, every
        // PUBACK it queues leaves errno at EAGAIN, which ends each read after
        // one QoS 1 message (`MQTTClient.read`).
        let client = try MQTTClient(loop: fixture.loop, endpoint: broker.endpoint, options: testOptions("coalesced"),
                                    dropSocketPair: true)
        try fixture.onLoop {
            fixture.loop.coalescing = coalescing
            client.onMessage = { message in
                let fields = String(decoding: message.payload, as: UTF8.self).split(separator: " ")
                let sent = MonotonicInstant(nanoseconds: UInt64(fields[1])!)
                received.append((Int(fields[0])!, MonotonicInstant.now().seconds(since: sent)))
            }
            try client.subscribe("c", qos: qos)
            client.start()
        }
        #expect(waitUntil(timeout: 10) { (try? fixture.onLoop { client.isSubscribed }) == true })
        return client
    }

    private func payload(_ i: Int) -> [UInt8] { bytes("\(i) \(MonotonicInstant.now().nanoseconds)") }

    @Test(arguments: [0, 1])
    func sustainedInputIsReadInBatchesCompleteAndInOrder(qos: Int) throws {
        let broker = try TestBroker(TestBroker.Configuration(extraLines: ["max_queued_messages 100000"]))
        let fixture = try TestLoop()
        defer { fixture.stop() }
        let received = Recorder<(Int, Double)>()
        let client = try subscriber(broker, fixture, coalescing: Self.coalescing, qos: qos, received)
        let publisher = try connected(broker.endpoint, testOptions("pub"))
        defer { publisher.stop() }
        let before = try fixture.onLoop { fixture.loop.figures }

        // About 5,000 a second: on a quiet machine one message per iteration without coalescing.
        let count = 2000
        for i in 0..<count {
            _ = try publisher.publish(topic: "c", payload: payload(i), qos: 1, retain: false)
            usleep(200)
        }
        let values = received.waitFor(count: count, timeout: 30)
        // Counted once the iteration that delivered the last one has ended.
        #expect(waitUntil(timeout: 5) { (try? fixture.onLoop { fixture.loop.figures.received - before.received }) == UInt64(count) })
        let after = try fixture.onLoop { fixture.loop.figures }
        #expect(values.map(\.0) == Array(0..<count), "lost or reordered")
        let iterations = after.iterations - before.iterations, messages = after.received - before.received
        #expect(messages == UInt64(count))
        #expect(after.waits > before.waits, "sustained input never waited")
        #expect(Double(messages) / Double(iterations) >= 2, "\(messages) messages in \(iterations) iterations")
        // The bound: each wait asks for at most maxDelay. What the scheduler
        // adds on a loaded machine (single waits of 50–80 ms were seen while
        // other tests ran) is allowed for in the mean, generously; waits of
        // several times the bound are not.
        let waits = Double(after.waits - before.waits)
        let meanWait = (after.waitedSeconds - before.waitedSeconds) / waits
        #expect(meanWait <= 2 * Self.coalescing.maxDelay + 0.003, "mean wait \(meanWait) s")
        // The latency the publisher's clock sees, wait included: the median
        // within the bound plus a loaded machine's scheduling.
        let latencies = values.map(\.1).sorted()
        #expect(latencies[latencies.count / 2] <= Self.coalescing.maxDelay + 0.02, "median latency \(latencies[latencies.count / 2]) s")
        try fixture.onLoop { client.stop() }
    }

    /// A full send window: the coalescing wait ends with the acknowledgements
    /// that open it (three quarters of the window's). A sender that keeps the
    /// broker's Receive Maximum (4 here) in flight gets a few PUBACKs per
    /// iteration, always less than `maxDelay` apart: each iteration would
    /// wait the whole `maxDelay`, and every round trip of the window would
    /// take that long.
    @Test func aFullWindowWaitsOnlyForItsAcknowledgements() throws {
        // Mosquitto sends max_inflight_messages to MQTT 5 clients as Receive Maximum.
        let broker = try TestBroker(TestBroker.Configuration(extraLines: ["max_inflight_messages 4"]))
        let fixture = try TestLoop()
        defer { fixture.stop() }
        let coalescing = EventLoop.Coalescing(maxDelay: 0.05, batch: 16)
        let client = try MQTTClient(loop: fixture.loop, endpoint: broker.endpoint, options: testOptions("windowed", version: .v5),
                                    dropSocketPair: true)
        let legacy = try MQTTClient(loop: fixture.loop, endpoint: broker.endpoint, options: testOptions("legacy"))
        /// Loop-bound: the sender's counts, like the proxy's delivery pump.
        final class Sender: @unchecked Sendable { var total = 0, sent = 0, acknowledged = 0 }
        let sender = Sender()
        try fixture.onLoop {
            fixture.loop.coalescing = coalescing
            client.onPublished = { _ in sender.acknowledged += 1 }
            fixture.loop.addIterationHook {
                guard client.isConnected else { return }
                while sender.sent < sender.total && sender.sent - sender.acknowledged < client.sendWindow {
                    _ = try? client.publish(topic: "w", payload: bytes("\(sender.sent)"), qos: 1, retain: false)
                    sender.sent += 1
                }
                if sender.sent < sender.total { client.awaitAcknowledgements() }
            }
            client.start()
            legacy.start()
        }
        #expect(waitUntil(timeout: 10) { (try? fixture.onLoop { client.isConnected && legacy.isConnected }) == true })
        #expect(try fixture.onLoop { client.sendWindow } == 4, "the broker's Receive Maximum")
        #expect(try fixture.onLoop { legacy.sendWindow } == legacy.options.maxInflight, "MQTT 3.1.1: the client's own")
        let before = try fixture.onLoop { fixture.loop.figures }

        let total = 400
        try fixture.onLoop {
            sender.total = total
            fixture.loop.execute {}  // an iteration, whose hook starts sending
        }
        #expect(waitUntil(timeout: 30) { (try? fixture.onLoop { sender.acknowledged }) == total })
        let after = try fixture.onLoop { fixture.loop.figures }
        let waits = after.waitsForAcknowledgements - before.waitsForAcknowledgements
        #expect(waits > 0, "the sender never waited with its window full")
        #expect(after.waitsCutShort - before.waitsCutShort > 0)
        #expect(after.acknowledgements - before.acknowledgements == UInt64(total))
        // The bound: a wait that awaited acknowledgements lasts a round trip
        // of the broker, not maxDelay; half of it allows for a loaded
        // machine's scheduling, the whole of it would be every wait.
        let meanWait = (after.waitedSeconds - before.waitedSeconds) / Double(after.waits - before.waits)
        #expect(meanWait < coalescing.maxDelay / 2, "mean wait \(meanWait) s over \(waits) waits for acknowledgements")
        try fixture.onLoop { client.stop(); legacy.stop() }
    }

    /// Gaps longer than the bound: no wait at all, so no added latency.
    @Test func slowInputNeverWaits() throws {
        let broker = try TestBroker()
        let fixture = try TestLoop()
        defer { fixture.stop() }
        let received = Recorder<(Int, Double)>()
        let client = try subscriber(broker, fixture, coalescing: Self.coalescing, received)
        let publisher = try connected(broker.endpoint, testOptions("pub"))
        defer { publisher.stop() }
        let before = try fixture.onLoop { fixture.loop.figures }
        for i in 0..<10 {
            _ = try publisher.publish(topic: "c", payload: payload(i), qos: 1, retain: false)
            usleep(50_000)
        }
        let values = received.waitFor(count: 10, timeout: 10)
        #expect(waitUntil(timeout: 5) { (try? fixture.onLoop { fixture.loop.figures.received - before.received }) == 10 })
        let after = try fixture.onLoop { fixture.loop.figures }
        #expect(values.map(\.0) == Array(0..<10))
        #expect(after.received - before.received == 10)
        #expect(after.waits == before.waits, "a slow input waited \(after.waits - before.waits) times")
        try fixture.onLoop { client.stop() }
    }

    /// Off by default: sustained input, no wait.
    @Test func offByDefault() throws {
        let broker = try TestBroker(TestBroker.Configuration(extraLines: ["max_inflight_messages 0"]))
        let fixture = try TestLoop()
        defer { fixture.stop() }
        #expect(try fixture.onLoop { fixture.loop.coalescing } == nil)
        let received = Recorder<(Int, Double)>()
        let client = try subscriber(broker, fixture, coalescing: nil, received)
        let publisher = try connected(broker.endpoint, testOptions("pub"))
        defer { publisher.stop() }
        for i in 0..<500 {
            _ = try publisher.publish(topic: "c", payload: payload(i), qos: 1, retain: false)
            usleep(200)
        }
        #expect(received.waitFor(count: 500, timeout: 30).map(\.0) == Array(0..<500))
        #expect(try fixture.onLoop { fixture.loop.figures.waits } == 0)
        try fixture.onLoop { client.stop() }
    }
}
