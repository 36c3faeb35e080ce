import Foundation
import MQTT
import RuleEngine

/// What the pipeline thread works on, in order.
enum PipelineEvent: Sendable {
    /// A message from the internal broker.
    case message(MQTTMessage)
    /// Home Assistant came online (or the central broker came back): announce every meter again.
    case announce
    /// SIGHUP compiled a new program: run it from the next message on.
    case reload(Program)
    /// Time passed: expire split sets that never completed.
    case tick
}

/// The queue between the internal broker's network thread and the pipeline thread.
///
/// Messages are bounded: when the pipeline is behind by `capacity`
/// messages, the network thread waits in `push` — that only slows the
/// internal broker down (its own session queue holds the rest), never
/// involves the central broker. Control events are never refused.
final class Inbox: @unchecked Sendable {
    private let condition = NSCondition()
    /// Guarded by `condition`.
    private var events = FIFO<PipelineEvent>()
    private var messages = 0
    private var bounded = true
    private var closed = false
    let capacity: Int

    init(capacity: Int) {
        self.capacity = capacity
    }

    /// On the internal network thread. Waits while the pipeline is `capacity` behind.
    func push(_ message: MQTTMessage) {
        condition.lock()
        while bounded && messages >= capacity { condition.wait() }
        events.append(.message(message))
        messages += 1
        condition.broadcast()
        condition.unlock()
    }

    /// From any thread; never waits. Ignored once closed.
    func push(_ event: PipelineEvent) {
        condition.lock()
        if !closed {
            events.append(event)
            condition.broadcast()
        }
        condition.unlock()
    }

    /// Lets `push` stop waiting (shutdown: the network thread must end).
    func unbound() {
        condition.lock()
        bounded = false
        condition.broadcast()
        condition.unlock()
    }

    /// No more events; `next` returns nil once the queue is empty.
    func close() {
        condition.lock()
        closed = true
        condition.broadcast()
        condition.unlock()
    }

    /// On the pipeline thread: the next event, waiting for one; nil when closed and empty.
    func next() -> PipelineEvent? {
        condition.lock()
        defer { condition.unlock() }
        while events.isEmpty {
            if closed { return nil }
            condition.wait()
        }
        let event = events.popFirst()
        if case .message = event {
            messages -= 1
            condition.broadcast()
        }
        return event
    }
}
