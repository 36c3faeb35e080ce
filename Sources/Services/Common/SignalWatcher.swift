import Dispatch
#if canImport(Glibc)
import Glibc
#endif

/// Turns SIGTERM, SIGINT and SIGHUP into calls of a handler on a serial
/// queue, where any code may run (unlike in a signal handler).
///
/// The signals are ignored at the process level first (`SIG_IGN`), so their
/// default action (terminate) never runs; dispatch still sees them. SIGPIPE is
/// ignored too: a broker that vanishes mid-write must not kill the service.
/// Keep the watcher alive as long as the signals should be handled (the
/// thread that made it keeps it; it never crosses threads).
public final class SignalWatcher {
    private let sources: [any DispatchSourceSignal]

    public init(_ signals: [Int32] = [SIGTERM, SIGINT, SIGHUP], queue: DispatchQueue = DispatchQueue(label: "signals"),
                handler: @escaping @Sendable (Int32) -> Void) {
        _ = Glibc.signal(SIGPIPE, SIG_IGN)
        sources = signals.map { number in
            _ = Glibc.signal(number, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: number, queue: queue)
            source.setEventHandler { handler(number) }
            source.resume()
            return source
        }
    }

    deinit {
        for source in sources { source.cancel() }
    }

    /// The conventional name, `SIGTERM`, for a log line.
    public static func name(_ number: Int32) -> String {
        switch number {
        case SIGTERM: "SIGTERM"
        case SIGINT: "SIGINT"
        case SIGHUP: "SIGHUP"
        default: "signal \(number)"
        }
    }
}
