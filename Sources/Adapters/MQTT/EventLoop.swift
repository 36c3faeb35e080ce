internal import CMosquitto
#if canImport(Glibc)
import Glibc
#endif
import Clock
import Synchronization

/// One thread that drives many libmosquitto clients (and timers) with epoll.
///
/// Each iteration:
/// 1. waits in `epoll_wait` until a socket is ready, a timer is due or another
///    thread posted work (`execute`, an eventfd wakes the loop);
/// 2. reads every ready socket, up to `readBatch` packets each, which runs the
///    clients' callbacks (`onMessage`, `onPublished`, …) right here;
/// 3. runs due timers and posted work;
/// 4. runs the *iteration hooks* in the order they were added;
/// 5. only then writes what the clients queued (PUBACKs, PUBLISHes, PINGREQs);
/// 6. with `coalescing` set, may wait a bounded time before the next one (below).
///
/// Step 5 coming after step 4 is what the proxy's journal relies on: every
/// client is in libmosquitto's threaded mode, where a packet is only queued in
/// memory when it is made (`packet__queue`, 2.0.11) and leaves the process in
/// `mosquitto_loop_write`, which only step 5 calls. A PUBACK for a message
/// read in step 2 therefore cannot reach the broker before the hooks of the
/// same iteration have returned.
///
/// Everything except `execute`, `stop`, `isOnLoopThread`, `isRunning` and
/// `permitsCallsFromHere` must be called on the loop's thread while it runs
/// (before and after, from the one thread that sets it up or tears it down),
/// and so must its clients and timers: debug builds check it (as swift-nio's
/// `preconditionInEventLoop` does) and trap; release builds do not pay for it.
/// No per-message locks: the only lock guards the posted work, which the hot
/// path never touches.
///
/// ## Coalescing under sustained input
/// A fast loop fed by a broker that writes each message as it comes handles
/// about one message per iteration: every message pays an `epoll_wait`, a
/// wake-up, the hooks (the proxy's journal write) and a socket write of its
/// own, and so does the broker at the other end of those writes (its
/// acknowledgements wake the loop too). With `coalescing` set, an iteration
/// that received at least one message or acknowledgement but fewer than
/// `Coalescing.batch`, less than `Coalescing.maxDelay` after the previous
/// iteration that received any (the input is sustained), ends with
/// a wait of `maxDelay` (shorter if a timer is due sooner): what arrives
/// meanwhile is read, handled, journalled and written in one iteration.
/// The latency this adds to a message is at most one such wait, `maxDelay`
/// (plus the scheduler's lateness in waking the thread): the message arrived
/// during it, or just before it began, unread. An idle or slow input (gaps
/// longer than `maxDelay`) never waits. Nothing changes the order of steps
/// 1–5, so what step 5 relies on holds.
///
/// A wait does not hold up work that only acknowledgements can release: a
/// client whose send window is full while more waits to go out says so in
/// the iteration (`MQTTClient.awaitAcknowledgements`: how many bytes of
/// acknowledgements it waits for), and the wait then ends as soon as its
/// socket has that many bytes to read (`SO_RCVLOWAT` for the wait's
/// duration), so the next iteration reads the acknowledgements — and
/// whatever else arrived meanwhile — and sends into the window again at once.
/// Waiting the whole `maxDelay` there would stretch every round trip of the
/// window by it (a broker that allows 20 messages in flight: at most 20 per
/// `maxDelay`); waking for every acknowledgement would cost an iteration each.
///
/// `@unchecked Sendable`: what other threads may call is behind the `Mutex`
/// and the atomics; everything else is loop-bound, checked as above.
public final class EventLoop: @unchecked Sendable {
    /// Packets read from one socket before the loop moves on (fairness, and a
    /// bound on what the hooks of one iteration see).
    public var readBatch = 64

    /// When to wait for more input before the next iteration; nil (the
    /// default): never. Set before `run`.
    public var coalescing: Coalescing?

    /// See the type's documentation.
    public struct Coalescing: Sendable {
        /// The longest wait, in seconds: the bound on the latency it adds.
        public var maxDelay: Double
        /// An iteration that received this many messages and acknowledgements does not wait.
        public var batch: Int

        public init(maxDelay: Double, batch: Int) {
            self.maxDelay = maxDelay
            self.batch = batch
        }
    }

    /// What the loop did since it was made. Loop thread (or after `run`).
    public struct Figures: Sendable, Equatable {
        /// Iterations run.
        public var iterations: UInt64 = 0
        /// Messages and acknowledgements the clients received
        /// (`MQTTClient.onMessage` and `onPublished` calls).
        public var received: UInt64 = 0
        /// Of `received`: acknowledgements (`MQTTClient.onPublished` calls).
        public var acknowledgements: UInt64 = 0
        /// Reads the clients asked libmosquitto for (`mosquitto_loop_read` calls).
        public var reads: UInt64 = 0
        /// Coalescing waits, and their total as measured (the scheduler may
        /// wake the thread later than asked), seconds.
        public var waits: UInt64 = 0
        public var waitedSeconds: Double = 0
        /// Of `waits`: those that awaited acknowledgements (a full send
        /// window), and of those, the ones the acknowledgements ended before `maxDelay`.
        public var waitsForAcknowledgements: UInt64 = 0
        public var waitsCutShort: UInt64 = 0
    }

    public var figures: Figures {
        assertOnLoop("EventLoop.figures")
        return counted
    }

    private let epoll: Int32
    private let wakeFD: Int32
    /// Work posted from other threads, and whether the eventfd was written
    /// since the loop last emptied it (so a burst of posts wakes it once).
    private let posted = Mutex<(tasks: [@Sendable () -> Void], woken: Bool)>(([], false))
    /// Set after a task was posted (before the wake-up), cleared by `runPosted`
    /// before it takes the lock: an iteration with nothing posted reads this
    /// flag only.
    private let hasPosted = Atomic<Bool>(false)
    private let running = Atomic<Bool>(false)
    private let stopRequested = Atomic<Bool>(false)
    private let threadID = Atomic<UInt>(0)

    // Loop thread only, below.
    /// The registered descriptors, indexed by descriptor (they are small and
    /// dense; the tables are as long as the highest one registered, which the
    /// process's descriptor limit bounds): no hashing per event. What epoll
    /// watches apart from the handlers, so that changing it copies no closure.
    private var registrations: [Registration?] = []
    private var handlers: [((UInt32) -> Void)?] = []
    private var nextGeneration: UInt32 = 1
    private var timers = TimerQueue()
    private var hooks: [() -> Void] = []
    /// Clients with packets to write, written in step 5.
    /// Clients with packets to write this iteration, each once (`MQTTClient.isMarkedDirty`):
    /// marking one is a flag test, not a hash, as it happens per message.
    private var dirty: [MQTTClient] = []
    private var flushing: [MQTTClient] = []
    private var clients: [ObjectIdentifier: MQTTClient] = [:]
    private var housekeepingStarted = false
    private var counted = Figures()
    /// Messages and acknowledgements received in this iteration (`noteReceived`).
    private var receivedThisIteration = 0
    /// When the last iteration that received any ended.
    private var lastInput: MonotonicInstant?
    /// The sockets of the clients awaiting acknowledgements in this iteration
    /// (`awaitReadable`), as ppoll takes them, and the bytes each awaits: a
    /// coalescing wait ends when one has them.
    private var awaited: [pollfd] = []
    private var awaitedBytes: [Int32] = []

    /// A registered file descriptor: its registration's generation and the events watched.
    private struct Registration {
        var generation: UInt32
        var events: UInt32
    }

    public init() throws(MQTTError) {
        LibMosquitto.initialised
        epoll = epoll_create1(Int32(EPOLL_CLOEXEC))
        guard epoll >= 0 else { throw MQTTError.system("epoll_create1") }
        wakeFD = eventfd(0, Int32(EFD_NONBLOCK | EFD_CLOEXEC))
        guard wakeFD >= 0 else {
            let error = MQTTError.system("eventfd")
            close(epoll)
            throw error
        }
        var event = epoll_event(events: EPOLLIN.rawValue, data: epoll_data_t(u64: UInt64(UInt32(bitPattern: wakeFD))))
        guard epoll_ctl(epoll, EPOLL_CTL_ADD, wakeFD, &event) == 0 else {
            let error = MQTTError.system("epoll_ctl(eventfd)")
            close(wakeFD); close(epoll)
            throw error
        }
    }

    deinit {
        close(wakeFD)
        close(epoll)
    }

    // MARK: Any thread

    /// Runs `task` on the loop thread, in posting order, in step 3 of an
    /// iteration. Safe from any thread; wakes the loop at most once per burst.
    public func execute(_ task: @escaping @Sendable () -> Void) {
        let wake = posted.withLock { state -> Bool in
            state.tasks.append(task)
            defer { state.woken = true }
            return !state.woken
        }
        hasPosted.store(true, ordering: .releasing)
        if wake { signalWake() }
    }

    /// Ends `run()` after the current iteration. Safe from any thread.
    public func stop() {
        stopRequested.store(true, ordering: .releasing)
        signalWake()
    }

    /// Whether the caller is the thread running this loop.
    public var isOnLoopThread: Bool {
        threadID.load(ordering: .acquiring) == UInt(pthread_self())
    }

    /// Whether `run()` is under way on some thread.
    public var isRunning: Bool { running.load(ordering: .acquiring) }

    /// Whether the caller may use this loop and its clients and timers: on
    /// the loop's thread while it runs; on any thread while none runs it
    /// (setting up before `run`, tearing down after). What the debug builds'
    /// affinity checks test.
    public var permitsCallsFromHere: Bool {
        let owner = threadID.load(ordering: .acquiring)
        return owner == 0 || owner == UInt(pthread_self())
    }

    /// Debug builds: traps unless `permitsCallsFromHere`. Release builds: nothing,
    /// the condition is not even evaluated (`assert`), so the per-message paths
    /// that check it (`markDirty`, `MQTTClient.publish`) cost nothing there.
    @inline(__always)
    func assertOnLoop(_ what: @autoclosure () -> String, file: StaticString = #fileID, line: UInt = #line) {
        assert(permitsCallsFromHere, "\(what()) called off its event loop's thread while the loop runs", file: file, line: line)
    }

    /// Starts a thread named `name` (Linux keeps 15 characters; `top -H` and
    /// `perf` show it) that runs the loop; `join` waits for it.
    public func startThread(name: String) -> LoopThread {
        LoopThread(name: name) { [self] in run() }
    }

    // MARK: Loop thread

    /// Runs iterations on the calling thread until `stop()`.
    public func run() {
        threadID.store(UInt(pthread_self()), ordering: .releasing)
        running.store(true, ordering: .releasing)
        startHousekeeping()
        var events = [epoll_event](repeating: epoll_event(), count: 256)
        while !stopRequested.load(ordering: .acquiring) {
            let timeout = timers.millisecondsUntilNext(now: MonotonicInstant.now())
            let count = events.withUnsafeMutableBufferPointer {
                epoll_wait(epoll, $0.baseAddress, Int32($0.count), timeout)
            }
            if count > 0 {
                for i in 0..<Int(count) { dispatch(events[i]) }
            }
            runDueTimers()
            runPosted()
            for hook in hooks { hook() }
            flushWrites()
            counted.iterations &+= 1
            if receivedThisIteration > 0 { endOfInput() }
            if !awaited.isEmpty { awaited.removeAll(keepingCapacity: true); awaitedBytes.removeAll(keepingCapacity: true) }
        }
        running.store(false, ordering: .releasing)
        runPosted()
        threadID.store(0, ordering: .releasing)
    }

    /// Runs `hook` once per iteration after reads, timers and posted work and
    /// before any client writes (see the type's documentation).
    public func addIterationHook(_ hook: @escaping () -> Void) {
        assertOnLoop("EventLoop.addIterationHook")
        hooks.append(hook)
    }

    /// Calls `body` once, `seconds` from now on the monotonic clock.
    @discardableResult
    public func schedule(after seconds: Double, _ body: @escaping () -> Void) -> LoopTimer {
        assertOnLoop("EventLoop.schedule")
        return timers.add(deadline: MonotonicInstant.now().adding(seconds: seconds), timer: LoopTimer(loop: self), body)
    }

    /// Calls `body` every `seconds` until cancelled.
    @discardableResult
    public func repeating(every seconds: Double, _ body: @escaping () -> Void) -> LoopTimer {
        assertOnLoop("EventLoop.repeating")
        let timer = LoopTimer(loop: self)
        func arm() {
            timers.add(deadline: MonotonicInstant.now().adding(seconds: seconds), timer: timer) {
                body()
                if !timer.cancelled { arm() }
            }
        }
        arm()
        return timer
    }

    // MARK: For clients

    /// Watches `fd` for `events` (EPOLLIN/EPOLLOUT); returns false if epoll refused it.
    func register(_ fd: Int32, events: UInt32, handler: @escaping (UInt32) -> Void) -> Bool {
        assertOnLoop("EventLoop.register")
        let generation = nextGeneration
        nextGeneration &+= 1
        guard fd >= 0 else { return false }
        var event = epoll_event(events: events, data: epoll_data_t(u64: Self.token(fd, generation)))
        guard epoll_ctl(epoll, EPOLL_CTL_ADD, fd, &event) == 0 else { return false }
        let index = Int(fd)
        if index >= registrations.count {
            registrations.append(contentsOf: repeatElement(nil, count: index + 1 - registrations.count))
            handlers.append(contentsOf: repeatElement(nil, count: index + 1 - handlers.count))
        }
        registrations[index] = Registration(generation: generation, events: events)
        handlers[index] = handler
        return true
    }

    func modify(_ fd: Int32, events: UInt32) {
        assertOnLoop("EventLoop.modify")
        let index = Int(fd)
        guard index >= 0, index < registrations.count, var registration = registrations[index],
              registration.events != events else { return }
        registration.events = events
        registrations[index] = registration
        var event = epoll_event(events: events, data: epoll_data_t(u64: Self.token(fd, registration.generation)))
        _ = epoll_ctl(epoll, EPOLL_CTL_MOD, fd, &event)
    }

    /// Stops watching `fd`, which is still open.
    func unregister(_ fd: Int32) {
        assertOnLoop("EventLoop.unregister")
        guard removeRegistration(fd) else { return }
        _ = epoll_ctl(epoll, EPOLL_CTL_DEL, fd, nil)
    }

    /// Forgets `fd` after it was closed (closing removed it from epoll).
    func forget(_ fd: Int32) {
        assertOnLoop("EventLoop.forget")
        removeRegistration(fd)
    }

    /// Whether `fd` was registered; it is not any more.
    @discardableResult
    private func removeRegistration(_ fd: Int32) -> Bool {
        let index = Int(fd)
        guard index >= 0, index < registrations.count, registrations[index] != nil else { return false }
        registrations[index] = nil
        handlers[index] = nil
        return true
    }

    func attach(_ client: MQTTClient) {
        assertOnLoop("EventLoop.attach")
        clients[ObjectIdentifier(client)] = client
    }

    func detach(_ client: MQTTClient) {
        assertOnLoop("EventLoop.detach")
        clients.removeValue(forKey: ObjectIdentifier(client))
        if client.isMarkedDirty {
            dirty.removeAll { $0 === client }
            client.isMarkedDirty = false
        }
    }

    /// `client` queued packets: write them in step 5 of this iteration.
    func markDirty(_ client: MQTTClient) {
        assertOnLoop("EventLoop.markDirty")
        guard !client.isMarkedDirty else { return }
        client.isMarkedDirty = true
        dirty.append(client)
    }

    /// A client delivered a message or an acknowledgement to its handler (step 2).
    @inline(__always)
    func noteReceived() {
        receivedThisIteration &+= 1
    }

    /// A client called `mosquitto_loop_read` (step 2).
    @inline(__always)
    func noteRead() {
        counted.reads &+= 1
    }

    /// A client delivered an acknowledgement to its handler (step 2).
    @inline(__always)
    func noteAcknowledged() {
        receivedThisIteration &+= 1
        counted.acknowledgements &+= 1
    }

    /// Work waits for acknowledgements on `fd` (a client's full send window):
    /// this iteration's coalescing wait, if any, ends when `fd` has `bytes`
    /// to read (or at its end, as any other).
    func awaitReadable(_ fd: Int32, bytes: Int = 1) {
        assertOnLoop("EventLoop.awaitReadable")
        guard !awaited.contains(where: { $0.fd == fd }) else { return }
        awaited.append(pollfd(fd: fd, events: Int16(POLLIN), revents: 0))
        awaitedBytes.append(Int32(clamping: max(1, bytes)))
    }

    // MARK: Internals

    /// An iteration that received messages or acknowledgements ends; step 6:
    /// wait `maxDelay` if it received a few shortly after the previous one
    /// that received any (see the type).
    private func endOfInput() {
        let received = receivedThisIteration
        receivedThisIteration = 0
        counted.received &+= UInt64(received)
        guard let coalescing else { return }
        let now = MonotonicInstant.now()
        let previous = lastInput
        lastInput = now
        guard received < coalescing.batch, let previous, now.seconds(since: previous) < coalescing.maxDelay else { return }
        // Not past a timer's deadline (a deadline already due: no wait).
        var delay = coalescing.maxDelay
        let untilTimer = timers.millisecondsUntilNext(now: now)
        if untilTimer == 0 { return }
        if untilTimer > 0 { delay = min(delay, Double(untilTimer) / 1000) }
        if awaited.isEmpty {
            var request = timespec(tv_sec: Int(delay), tv_nsec: Int((delay - delay.rounded(.down)) * 1e9))
            var remaining = timespec()
            // A signal cuts the wait short: sleep what is left of it.
            while nanosleep(&request, &remaining) != 0 && errno == EINTR { request = remaining }
        } else {
            counted.waitsForAcknowledgements &+= 1
            if awaitInput(until: now.adding(seconds: delay)) { counted.waitsCutShort &+= 1 }
        }
        let end = MonotonicInstant.now()
        counted.waits &+= 1
        counted.waitedSeconds += end.seconds(since: now)
        // The gap to the next input is measured from here, not from before the wait.
        lastInput = end
    }

    /// Waits until one of the awaited sockets has the bytes it awaits (true)
    /// or `deadline` (false). The sockets' receive low-water mark is what
    /// makes the kernel wake the thread only then (TCP's poll honours it);
    /// it is set back to 1 before anything reads them.
    private func awaitInput(until deadline: MonotonicInstant) -> Bool {
        var one: Int32 = 1
        for (i, bytes) in awaitedBytes.enumerated() where bytes > 1 {
            var value = bytes
            _ = setsockopt(awaited[i].fd, SOL_SOCKET, SO_RCVLOWAT, &value, socklen_t(MemoryLayout<Int32>.size))
        }
        defer {
            for (i, bytes) in awaitedBytes.enumerated() where bytes > 1 {
                _ = setsockopt(awaited[i].fd, SOL_SOCKET, SO_RCVLOWAT, &one, socklen_t(MemoryLayout<Int32>.size))
            }
        }
        while true {
            let now = MonotonicInstant.now()
            guard deadline > now else { return false }
            let left = Int64(deadline.nanoseconds - now.nanoseconds)
            let ready = awaited.withUnsafeMutableBufferPointer { kpm_poll_nanoseconds($0.baseAddress, nfds_t($0.count), left) }
            if ready > 0 { return true }
            // A signal cuts the wait short: wait what is left of it.
            if ready == 0 || errno != EINTR { return false }
        }
    }

    /// The epoll cookie: descriptor and registration generation, so that an
    /// event for a descriptor closed and reused within one `epoll_wait` batch
    /// is not delivered to the new owner.
    private static func token(_ fd: Int32, _ generation: UInt32) -> UInt64 {
        UInt64(generation) << 32 | UInt64(UInt32(bitPattern: fd))
    }

    private func dispatch(_ event: epoll_event) {
        let token = event.data.u64
        let fd = Int32(bitPattern: UInt32(truncatingIfNeeded: token))
        if fd == wakeFD {
            var value: UInt64 = 0
            _ = read(wakeFD, &value, 8)
            return
        }
        let index = Int(fd)
        guard index >= 0, index < registrations.count, let registration = registrations[index],
              registration.generation == UInt32(truncatingIfNeeded: token >> 32), let handler = handlers[index] else { return }
        handler(event.events)
    }

    private func runDueTimers() {
        let now = MonotonicInstant.now()
        while let body = timers.popDue(now: now) { body() }
    }

    private func runPosted() {
        guard hasPosted.exchange(false, ordering: .acquiringAndReleasing) else { return }
        let tasks = posted.withLock { state -> [@Sendable () -> Void] in
            state.woken = false
            defer { state.tasks.removeAll(keepingCapacity: true) }
            return state.tasks
        }
        for task in tasks { task() }
    }

    private func flushWrites() {
        guard !dirty.isEmpty else { return }
        swap(&dirty, &flushing)
        for client in flushing {
            client.isMarkedDirty = false
            client.writePending()
        }
        // One or two clients: popping them is cheaper than removeAll's generic
        // replaceSubrange, and keeps the capacity as well.
        while flushing.popLast() != nil {}
    }

    /// Once a second: libmosquitto's keepalive (PINGREQ, and giving up on a
    /// silent broker) for every client.
    private func startHousekeeping() {
        guard !housekeepingStarted else { return }
        housekeepingStarted = true
        repeating(every: 1) { [unowned self] in
            for client in clients.values { client.housekeeping() }
        }
    }

    private func signalWake() {
        var one: UInt64 = 1
        _ = write(wakeFD, &one, 8)
    }
}

/// A timer of an `EventLoop`; `cancel()` on the loop thread (checked in debug builds).
///
/// `@unchecked Sendable`: services keep timers in state that crosses threads
/// before the loop runs; the flag itself is only touched on the loop's thread.
public final class LoopTimer: @unchecked Sendable {
    fileprivate(set) var cancelled = false
    #if DEBUG
    /// For the affinity check only; release builds store nothing.
    private weak var loop: EventLoop?
    #endif

    init(loop: EventLoop) {
        #if DEBUG
        self.loop = loop
        #endif
    }

    public func cancel() {
        #if DEBUG
        loop?.assertOnLoop("LoopTimer.cancel")
        #endif
        cancelled = true
    }
}

/// A thread of our own, named, joinable; no Foundation.
public final class LoopThread: Sendable {
    private let thread: pthread_t

    init(name: String, body: @escaping @Sendable () -> Void) {
        var thread = pthread_t()
        final class Box { let name: String; let body: @Sendable () -> Void
            init(_ name: String, _ body: @escaping @Sendable () -> Void) { self.name = name; self.body = body } }
        // +1 released by the thread itself once it has read the box.
        let context = Unmanaged.passRetained(Box(name, body)).toOpaque()
        let rc = pthread_create(&thread, nil, { raw in
            let box = Unmanaged<AnyObject>.fromOpaque(raw!).takeRetainedValue() as! Box
            _ = kpm_name_current_thread(String(box.name.utf8.prefix(15))!)
            box.body()
            return nil
        }, context)
        precondition(rc == 0, "pthread_create failed: \(rc)")
        self.thread = thread
    }

    /// Starts a thread named `name` that runs `body` (not a loop); join or detach it.
    public static func spawn(name: String, _ body: @escaping @Sendable () -> Void) -> LoopThread {
        LoopThread(name: name, body: body)
    }

    /// Waits for the thread to end.
    public func join() {
        _ = pthread_join(thread, nil)
    }

    /// Nobody will join: the system frees the thread when it ends.
    public func detach() {
        _ = pthread_detach(thread)
    }
}

/// Timers ordered by deadline (ties: in the order they were added).
struct TimerQueue {
    private struct Entry {
        var deadline: MonotonicInstant
        var order: UInt64
        var timer: LoopTimer
        var body: () -> Void
    }
    private var heap = MinHeap<Entry> { a, b in
        a.deadline == b.deadline ? a.order < b.order : a.deadline < b.deadline
    }
    private var counter: UInt64 = 0

    @discardableResult
    mutating func add(deadline: MonotonicInstant, timer: LoopTimer, _ body: @escaping () -> Void) -> LoopTimer {
        counter += 1
        heap.push(Entry(deadline: deadline, order: counter, timer: timer, body: body))
        return timer
    }

    /// The epoll timeout: -1 (none), or milliseconds until the earliest, rounded up.
    mutating func millisecondsUntilNext(now: MonotonicInstant) -> Int32 {
        while let first = heap.first, first.timer.cancelled { heap.popFirst() }
        guard let first = heap.first else { return -1 }
        if first.deadline <= now { return 0 }
        let ms = (first.deadline.nanoseconds - now.nanoseconds + 999_999) / 1_000_000
        return Int32(min(ms, 60_000))
    }

    /// The body of the earliest timer due at `now`, removed; nil if none is due.
    mutating func popDue(now: MonotonicInstant) -> (() -> Void)? {
        while let first = heap.first {
            if first.timer.cancelled { heap.popFirst(); continue }
            guard first.deadline <= now else { return nil }
            heap.popFirst()
            return first.body
        }
        return nil
    }
}
