import Foundation
import MQTT
import RuleEngine

/// The bounded queue between the pipeline and the central broker, and the
/// messages handed to the central connection that wait for their PUBACK.
///
/// The pipeline appends and never waits: when `limit` messages are queued,
/// the oldest queued one is dropped (counted by the caller). A publisher
/// thread hands messages to the connection while it is connected and fewer
/// than `window` are unacknowledged; each one stays in `inFlight` until its
/// PUBACK. libmosquitto keeps an unacknowledged QoS 1 message across a lost
/// connection and sends it again after the next CONNACK, so a message
/// handed over is never handed over twice; the window keeps that queue (and
/// libmosquitto's per-acknowledgement walk of it) short while the rest waits
/// here, bounded.
final class Outbox: @unchecked Sendable {
    private let condition = NSCondition()
    // Everything below is guarded by `condition`.
    private var queue = FIFO<Outgoing>()
    private var inFlight: [Int32: Outgoing] = [:]
    /// Message ids of our own status messages (not from the queue), until acknowledged.
    private var controlInFlight: Set<Int32> = []
    private var limit: Int
    private var connected = false
    private var closed = false
    private let window: Int

    init(limit: Int, window: Int = 256) {
        self.limit = max(1, limit)
        self.window = max(1, window)
    }

    /// Queued plus unacknowledged messages.
    var pending: Int { locked { queue.count + inFlight.count } }
    var queued: Int { locked { queue.count } }

    func setLimit(_ newLimit: Int) {
        locked { limit = max(1, newLimit) }
    }

    /// On the pipeline thread; never waits. Returns the messages dropped to make room (oldest first).
    func append(_ messages: [Outgoing]) -> [Outgoing] {
        guard !messages.isEmpty else { return [] }
        condition.lock()
        defer { condition.unlock() }
        var dropped: [Outgoing] = []
        for message in messages {
            if queue.count >= limit, let oldest = queue.popFirst() { dropped.append(oldest) }
            queue.append(message)
        }
        condition.broadcast()
        return dropped
    }

    /// The central connection's state changed (any thread).
    func setConnected(_ value: Bool) {
        locked {
            connected = value
            condition.broadcast()
        }
    }

    /// The broker acknowledged `mid`. Returns the queued message it was, nil
    /// for a status message or an id that is not ours.
    func acknowledged(_ mid: Int32) -> Outgoing? {
        locked {
            condition.broadcast()
            if controlInFlight.remove(mid) != nil { return nil }
            return inFlight.removeValue(forKey: mid)
        }
    }

    /// The publisher thread's loop: hands queued messages to `publish` in order
    /// until `close()`. `publish` is called with the lock held, so its
    /// acknowledgement (which takes the lock) cannot overtake the bookkeeping
    /// of its id. It returns the message id, or nil when the message cannot
    /// ever be sent (it is then dropped; the closure logs why).
    func runPublisher(_ publish: (Outgoing) -> Int32?) {
        condition.lock()
        defer { condition.unlock() }
        while true {
            while !closed && (queue.isEmpty || !connected || inFlight.count >= window) { condition.wait() }
            if closed { return }
            guard let message = queue.popFirst() else { continue }
            if let mid = publish(message) { inFlight[mid] = message }
        }
    }

    /// Sends a message outside the queue (status), tracked so that
    /// `waitForAcknowledgement` can wait for it. Returns its id.
    func publishControl(_ publish: () -> Int32?) -> Int32? {
        locked {
            let mid = publish()
            if let mid { controlInFlight.insert(mid) }
            return mid
        }
    }

    /// Waits until nothing is queued or unacknowledged, or `deadline`; true if drained.
    func waitUntilDrained(deadline: Date) -> Bool {
        condition.lock()
        defer { condition.unlock() }
        while !(queue.isEmpty && inFlight.isEmpty) {
            if !condition.wait(until: deadline) { return queue.isEmpty && inFlight.isEmpty }
        }
        return true
    }

    func waitForAcknowledgement(_ mid: Int32, deadline: Date) -> Bool {
        condition.lock()
        defer { condition.unlock() }
        while controlInFlight.contains(mid) {
            if !condition.wait(until: deadline) { return !controlInFlight.contains(mid) }
        }
        return true
    }

    /// Ends `runPublisher`.
    func close() {
        locked {
            closed = true
            condition.broadcast()
        }
    }

    private func locked<T>(_ body: () -> T) -> T {
        condition.lock()
        defer { condition.unlock() }
        return body()
    }
}
