import Dispatch
import MQTT
import Synchronization

/// An `EventLoop` on a thread of its own, for a test: `onLoop` runs code on
/// the loop's thread and waits for it, so that a test drives loop-bound
/// objects (`MQTTClient`, timers) from its own thread as the services do from
/// their handlers.
public final class TestLoop: Sendable {
    public let loop: EventLoop
    private let thread: LoopThread
    private let ended = Atomic<Bool>(false)

    public init(name: String = "test-loop") throws {
        loop = try EventLoop()
        thread = loop.startThread(name: name)
    }

    deinit { stop() }

    /// Runs `body` on the loop's thread (at once when called there) and
    /// returns its result; nil if the loop did not run it within `timeout`
    /// seconds (it is stopped, or stuck).
    public func waitOnLoop<T>(timeout: Double = 10, _ body: @escaping @Sendable () -> T) -> T? {
        if loop.isOnLoopThread { return body() }
        let box = ResultBox<T>()
        let done = DispatchSemaphore(value: 0)
        loop.execute {
            box.value = body()
            done.signal()
        }
        guard done.wait(timeout: .now() + timeout) == .success else { return nil }
        return box.value
    }

    /// Runs `body` on the loop's thread and returns what it returned or threw.
    public func onLoop<T>(_ body: @escaping @Sendable () throws -> T) throws -> T {
        guard let result = waitOnLoop({ Result { try body() } }) else {
            throw TestBroker.Failure.setup("the test's event loop did not answer within 10 s")
        }
        return try result.get()
    }

    /// Ends the loop and its thread; once. From the loop's own thread (a
    /// handler) it cannot wait for itself: the thread ends on its own.
    public func stop() {
        guard !ended.exchange(true, ordering: .acquiringAndReleasing) else { return }
        loop.stop()
        if loop.isOnLoopThread { thread.detach() } else { thread.join() }
    }
}

/// What a posted closure returns to the thread waiting for it. Unchecked:
/// written on the loop's thread before the semaphore is signalled, read by
/// the waiter only after it returned from waiting on it.
private final class ResultBox<T>: @unchecked Sendable {
    var value: T?
}
