import Foundation
import MQTT
import RuleEngine

/// The bounded queue between the pipeline and the central broker, and the
/// messages handed to the central connection that wait for their PUBACK.
///
/// Nobody waits on the central broker here. `append` (pipeline thread)
/// queues and then *pumps*: it hands queued messages to the connection while
/// it is connected and fewer than `window` are unacknowledged. Each PUBACK
/// (central network thread) and each reconnect pumps again. `publish` never
/// blocks (libmosquitto only queues the packet for its network thread), so
/// there is no publisher thread and no hand-off per message.
///
/// When `limit` messages are queued, the oldest queued one is dropped to make
/// room (the caller counts it). A handed-over message stays in `inFlight`
/// until its PUBACK: libmosquitto keeps an unacknowledged QoS 1 message across
/// a lost connection and sends it again after the next CONNACK, so it is never
/// handed over twice. The window keeps libmosquitto's own queue (and its
/// per-acknowledgement walk of it) short while the rest waits here, bounded.
///
/// Order survives a reconnect: libmosquitto sends its unacknowledged messages
/// again only *after* the connect callback, so anything handed over from that
/// callback would overtake them. After a reconnect the outbox therefore hands
/// over nothing new until the old ones are acknowledged — or, should that
/// never happen, until `resendGraceSeconds` passed (`poke()` checks).
final class Outbox: @unchecked Sendable {
    /// Hands one message to the connection; returns its message id, or nil when
    /// it can never be sent (dropped; the closure counts and logs why). Called
    /// with the outbox lock held, so a PUBACK (which takes the lock) cannot
    /// overtake the bookkeeping of its id.
    typealias Publish = @Sendable (Outgoing) -> Int32?

    private let condition = NSCondition()
    // Everything below is guarded by `condition`.
    private var queue = FIFO<Outgoing>()
    private var inFlight: [Int32: Outgoing] = [:]
    /// Message ids of our own status messages (not from the queue), until acknowledged.
    private var controlInFlight: Set<Int32> = []
    private var limit: Int
    private var connected = false
    private var closed = false
    /// Set on a reconnect with messages in flight: until then, nothing new is handed over.
    private var holdUntil: Date?
    /// Threads in `waitUntilDrained` or `waitForAcknowledgement`: only they need a broadcast.
    private var waiters = 0
    private let window: Int
    private let resendGraceSeconds: Double
    private let publish: Publish

    init(limit: Int, window: Int = 256, resendGraceSeconds: Double = 10, publish: @escaping Publish) {
        self.limit = max(1, limit)
        self.window = max(1, window)
        self.resendGraceSeconds = resendGraceSeconds
        self.publish = publish
    }

    /// Queued plus unacknowledged messages.
    var pending: Int { locked { queue.count + inFlight.count } }
    var queued: Int { locked { queue.count } }

    /// On the pipeline thread; never waits for the broker. Returns the
    /// messages dropped to make room (oldest first).
    func append(_ messages: [Outgoing]) -> [Outgoing] {
        guard !messages.isEmpty else { return [] }
        return locked {
            var dropped: [Outgoing] = []
            for message in messages {
                if queue.count >= limit, let oldest = queue.popFirst() { dropped.append(oldest) }
                queue.append(message)
            }
            pump()
            return dropped
        }
    }

    /// The central connection's state changed (its callback thread).
    func setConnected(_ value: Bool) {
        locked {
            if value && !connected && !inFlight.isEmpty {
                holdUntil = Date(timeIntervalSinceNow: resendGraceSeconds)
            }
            connected = value
            pump()
        }
    }

    /// Called now and then (timer thread): ends an overdue hold.
    func poke() {
        locked { pump() }
    }

    /// The broker acknowledged `mid` (central network thread). Returns the
    /// queued message it was; nil for a status message or an id that is not ours.
    func acknowledged(_ mid: Int32) -> Outgoing? {
        locked {
            let message: Outgoing?
            if controlInFlight.remove(mid) != nil {
                message = nil
            } else {
                message = inFlight.removeValue(forKey: mid)
                if inFlight.isEmpty { holdUntil = nil }
                pump()
            }
            if waiters > 0 { condition.broadcast() }
            return message
        }
    }

    /// Sends a message outside the queue (status), tracked so that
    /// `waitForAcknowledgement` can wait for it. Returns its id.
    func publishControl(_ send: () -> Int32?) -> Int32? {
        locked {
            let mid = send()
            if let mid { controlInFlight.insert(mid) }
            return mid
        }
    }

    /// Waits until nothing is queued or unacknowledged, or `deadline`; true if drained.
    func waitUntilDrained(deadline: Date) -> Bool {
        wait(deadline: deadline) { queue.isEmpty && inFlight.isEmpty }
    }

    func waitForAcknowledgement(_ mid: Int32, deadline: Date) -> Bool {
        wait(deadline: deadline) { !controlInFlight.contains(mid) }
    }

    /// Nothing is handed over any more (shutdown).
    func close() {
        locked { closed = true }
    }

    /// Hands over queued messages while the window allows. Lock held.
    private func pump() {
        if let until = holdUntil {
            guard Date() >= until else { return }
            holdUntil = nil
        }
        while connected && !closed && inFlight.count < window, let message = queue.popFirst() {
            if let mid = publish(message) { inFlight[mid] = message }
        }
    }

    private func wait(deadline: Date, until done: () -> Bool) -> Bool {
        condition.lock()
        defer { condition.unlock() }
        waiters += 1
        defer { waiters -= 1 }
        while !done() {
            if !condition.wait(until: deadline) { return done() }
        }
        return true
    }

    private func locked<T>(_ body: () -> T) -> T {
        condition.lock()
        defer { condition.unlock() }
        return body()
    }
}
