import MQTT
import SiteSettings
import Synchronization

/// Stop and reload requests from other threads (the signal queue, a test),
/// for a `ServiceHost`'s loop thread: the only state of a service that two
/// threads touch; it sits in a `Mutex`.
///
/// A reload is compiled on the thread that asks for it, never on the loop:
/// loading and compiling the packs takes milliseconds to seconds, the loop
/// carries the meters' traffic meanwhile. The compiled site waits here until
/// the loop takes it and swaps it in. A request wakes the loop with an empty
/// posted task; the host takes the requests in its iteration hook, which runs
/// right after posted work.
public final class ServiceControl: Sendable {
    private struct Requests {
        /// The first stop request's reason; it stays once set.
        var stop: String?
        var stopTaken = false
        /// The last site compiled by a reload, not yet taken by the loop.
        var site: Site?
    }

    private let requests = Mutex(Requests())
    /// Set after a request was stored, cleared by `take` before it looks: the
    /// loop's every iteration reads this flag, not the lock and the site.
    private let pending = Atomic<Bool>(false)
    private let loop: EventLoop
    /// Loads, checks and compiles the packs and the site config, logging every
    /// diagnostic of a failure; nil when it failed. Never runs on the loop.
    private let compile: @Sendable (_ trigger: String) -> Site?

    init(loop: EventLoop, compile: @escaping @Sendable (_ trigger: String) -> Site?) {
        self.loop = loop
        self.compile = compile
    }

    /// Asks the service to drain, go offline and stop. Returns false when a
    /// stop was requested before (a second SIGTERM: the caller may exit at once).
    @discardableResult
    public func requestStop(reason: String) -> Bool {
        let first = requests.withLock { r in
            defer { if r.stop == nil { r.stop = reason } }
            return r.stop == nil
        }
        pending.store(true, ordering: .releasing)
        loop.execute {}
        return first
    }

    /// SIGHUP: compiles the packs and the site config on the calling thread;
    /// a clean result replaces the running one on the loop, a failure leaves
    /// it running (its diagnostics are logged).
    public func requestReload(trigger: String = "SIGHUP") {
        guard let site = compile(trigger) else { return }
        requests.withLock { $0.site = site }
        pending.store(true, ordering: .releasing)
        loop.execute {}
    }

    /// Whether something may have been asked since the last `take`: one
    /// atomic load, what the loop pays in an iteration without a request.
    var hasRequests: Bool { pending.load(ordering: .acquiring) }

    /// What was asked since the last call: a stop reason (once) and a compiled site to apply.
    /// A request stored while this runs is taken now or, its flag set again, next time.
    func take() -> (stop: String?, site: Site?) {
        guard pending.exchange(false, ordering: .acquiringAndReleasing) else { return (nil, nil) }
        return requests.withLock { r in
            defer {
                r.site = nil
                if r.stop != nil { r.stopTaken = true }
            }
            return (r.stopTaken ? nil : r.stop, r.site)
        }
    }
}
