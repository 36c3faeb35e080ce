#if canImport(Glibc)
import Glibc
#endif
import Clock
import MQTT
import Synchronization

/// A state database's writes on a thread of their own, so that the event
/// loop never waits for the disk (a slow or stalled disk cannot cost the
/// brokers' keepalives or the services' timers).
///
/// The loop hands changes over by value (`submit`); changes to the same key
/// not yet written are merged (`merge`), so what waits is bounded by the
/// number of keys (meters), however slow the disk. The thread writes them
/// through `write` in transactions of at most `batch` changes. A failed
/// write keeps its changes (merged under any newer ones) and is tried again
/// after `retrySeconds`; the loop collects the failures (`takeFailures`) to
/// log them. Only shutdown waits: `flush` until everything handed over is
/// written, at most a given time.
final class StateWriter<Key: Hashable & Sendable, Change: Sendable>: Sendable {
    typealias Write = @Sendable ([(key: Key, change: Change)]) throws(StateStoreError) -> Void

    private struct State: ~Copyable {
        var pending: [Key: Change] = [:]
        /// Taken by the thread and not yet committed.
        var writing = 0
        var stopping = false
        var failures: [String] = []
        var batchesWritten = 0
    }

    private let state = Mutex(State())
    /// Written to when there is work (or the writer should stop); the thread waits on it.
    private let wake: Signal
    /// Written to when the writer went idle (nothing pending, nothing being written).
    private let idle: Signal
    private let merge: @Sendable (inout Change, Change) -> Void
    private let write: Write
    private let batch: Int
    private let retrySeconds: Double
    private let thread = Mutex<LoopThread?>(nil)
    private let name: String

    /// `merge(&older, newer)`: folds a newer change of a key into one not yet written.
    init(name: String, batch: Int, retrySeconds: Double = 1,
         merge: @escaping @Sendable (inout Change, Change) -> Void, write: @escaping Write) {
        self.name = name
        self.batch = max(1, batch)
        self.retrySeconds = retrySeconds
        self.merge = merge
        self.write = write
        wake = Signal()
        idle = Signal()
    }

    deinit { stop() }

    /// Hands changes over to the writer thread (started at the first call).
    /// Never waits for the disk. Any sequence: a lazy one is read straight
    /// into the pending changes, with no array of them in between.
    func submit<Changes: Sequence>(_ changes: Changes) where Changes.Element == (key: Key, change: Change) {
        let handed = state.withLock { s in
            var handed = false
            for (key, change) in changes {
                handed = true
                if s.pending[key] != nil { merge(&s.pending[key]!, change) } else { s.pending[key] = change }
            }
            return handed
        }
        guard handed else { return }
        startIfNeeded()
        wake.post()
    }

    /// Changes handed over and not yet committed.
    var backlog: Int { state.withLock { $0.pending.count + $0.writing } }

    /// Transactions committed so far (tests).
    var batchesWritten: Int { state.withLock { $0.batchesWritten } }

    /// Failed writes since the last call, each as a sentence (the writer tries them again).
    func takeFailures() -> [String] {
        state.withLock { s in
            defer { s.failures.removeAll() }
            return s.failures
        }
    }

    /// Waits until everything handed over is committed, at most `seconds`;
    /// false when some is still waiting (a failing or stalled disk).
    func flush(seconds: Double) -> Bool {
        let deadline = MonotonicInstant.now().adding(seconds: seconds)
        while backlog > 0 {
            let now = MonotonicInstant.now()
            guard now < deadline else { return false }
            wake.post()
            idle.wait(milliseconds: Int32(min(100, (deadline.nanoseconds - now.nanoseconds) / 1_000_000 + 1)))
        }
        return true
    }

    /// Ends the thread after the write it is doing (what is still pending stays, for a next thread).
    func stop() {
        state.withLock { $0.stopping = true }
        wake.post()
        let thread = self.thread.withLock { t in
            defer { t = nil }
            return t
        }
        thread?.join()
        state.withLock { $0.stopping = false }  // the next submit starts a new thread
    }

    private func startIfNeeded() {
        thread.withLock { t in
            guard t == nil else { return }
            t = LoopThread.spawn(name: name) { [self] in run() }
        }
    }

    private func run() {
        while true {
            let taken: [(key: Key, change: Change)]? = state.withLock { s in
                if s.stopping { return nil }
                guard !s.pending.isEmpty else { return [] }
                var taken: [(key: Key, change: Change)] = []
                taken.reserveCapacity(min(batch, s.pending.count))
                for (key, change) in s.pending {
                    guard taken.count < batch else { break }
                    taken.append((key, change))
                }
                for (key, _) in taken { s.pending[key] = nil }
                s.writing = taken.count
                return taken
            }
            guard let taken else { return }
            if taken.isEmpty {
                idle.post()
                wake.wait(milliseconds: -1)
                continue
            }
            do {
                try write(taken)
                state.withLock { s in
                    s.writing = 0
                    s.batchesWritten += 1
                }
            } catch {
                state.withLock { s in
                    s.writing = 0
                    // Newer changes of the same keys go on top of the ones that failed.
                    for (key, older) in taken {
                        var change = older
                        if let newer = s.pending[key] { merge(&change, newer) }
                        s.pending[key] = change
                    }
                    if s.failures.count < 100 { s.failures.append(error.message) }
                }
                wake.wait(milliseconds: Int32(retrySeconds * 1000))
            }
        }
    }

}

/// A wake-up between two threads: a non-blocking pipe (a post never blocks;
/// posts not yet waited for count as one).
private final class Signal: Sendable {
    private let readEnd: Int32
    private let writeEnd: Int32

    init() {
        var fds: [Int32] = [-1, -1]
        precondition(pipe(&fds) == 0, "pipe failed: \(String(cString: strerror(errno)))")
        for fd in fds {
            _ = fcntl(fd, F_SETFD, FD_CLOEXEC)
            _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
        }
        (readEnd, writeEnd) = (fds[0], fds[1])
    }

    deinit {
        close(readEnd)
        close(writeEnd)
    }

    func post() {
        var byte: UInt8 = 1
        _ = write(writeEnd, &byte, 1)  // a full pipe is a wake-up already posted
    }

    /// Waits for a post (at most `milliseconds`; -1: no limit) and consumes every post so far.
    func wait(milliseconds: Int32) {
        var p = pollfd(fd: readEnd, events: Int16(POLLIN), revents: 0)
        guard poll(&p, 1, milliseconds) > 0 else { return }
        var buffer = [UInt8](repeating: 0, count: 64)
        while read(readEnd, &buffer, buffer.count) == buffer.count {}
    }
}
