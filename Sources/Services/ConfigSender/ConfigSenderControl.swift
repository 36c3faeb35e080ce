import MQTT
import Synchronization

/// Stop and reload requests from other threads (signal handlers), for the
/// service's loop thread. The only state of the config sender that two
/// threads touch; it sits in a `Mutex`.
///
/// A request wakes the loop with an empty posted task; the service takes the
/// requests in its iteration hook, which runs right after posted work.
public final class ConfigSenderControl: Sendable {
    private struct Requests {
        /// The first stop request's reason; it stays once set.
        var stop: String?
        var stopTaken = false
        var reload = false
    }

    private let requests = Mutex(Requests())
    private let loop: EventLoop

    init(loop: EventLoop) {
        self.loop = loop
    }

    /// Asks the service to drain, save and stop. Returns false when a stop was
    /// requested before (a second SIGTERM: the caller may exit at once).
    @discardableResult
    public func requestStop(reason: String) -> Bool {
        let first = requests.withLock { r in
            defer { if r.stop == nil { r.stop = reason } }
            return r.stop == nil
        }
        loop.execute {}
        return first
    }

    /// Asks for a reload of the config and the pack even if no file changed (SIGHUP).
    public func requestReload() {
        requests.withLock { $0.reload = true }
        loop.execute {}
    }

    /// What was asked since the last call: a stop reason (once) and whether to reload.
    func take() -> (stop: String?, reload: Bool) {
        requests.withLock { r in
            defer {
                r.reload = false
                if r.stop != nil { r.stopTaken = true }
            }
            return (r.stopTaken ? nil : r.stop, r.reload)
        }
    }
}
