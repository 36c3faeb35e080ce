#if canImport(Glibc)
import Glibc
#endif
import Clock
import MQTT
import Synchronization

/// How much a service says. Ordered: `debug` < `info` < `warning` < `error`.
public enum LogLevel: Int, Sendable, Comparable, CaseIterable, CustomStringConvertible {
    case debug, info, warning, error

    public init?(name: String) {
        switch name.lowercased() {
        case "debug": self = .debug
        case "info": self = .info
        case "warning", "warn": self = .warning
        case "error": self = .error
        default: return nil
        }
    }

    public var description: String {
        switch self {
        case .debug: "debug"
        case .info: "info"
        case .warning: "warning"
        case .error: "error"
        }
    }

    public static func < (a: LogLevel, b: LogLevel) -> Bool { a.rawValue < b.rawValue }

    /// The syslog priority journald reads from a `<N>` line prefix.
    public var syslogPriority: Int {
        switch self {
        case .debug: 7
        case .info: 6
        case .warning: 4
        case .error: 3
        }
    }
}

/// One event per line on stdout, in logfmt after a syslog priority prefix
/// that journald reads (and strips) by default, so `journalctl -p warning`
/// filters: `<4>level=warning msg="dropped input" reason=malformed topic=MQTT_RT_DATA`.
///
/// Thread-safe: a line is formatted outside the lock (a `Mutex`); lines from
/// different threads never interleave. Values with spaces, quotes, `=` or
/// control characters are quoted and escaped, so a meter's payload can never
/// forge a field or a line.
///
/// Never blocks its caller (the event loop) on a stalled reader: a line goes
/// into a bounded buffer (`bufferLimit`), which is written only as far as
/// the descriptor takes it without waiting (`poll` with no timeout, then at
/// most `PIPE_BUF` bytes, which a pipe or socket that polls writable takes
/// whole). What is left is written by a flusher thread of its own, which
/// waits for the reader and exists only while something is left. A line that
/// does not fit is dropped and counted (`droppedLines`); once the reader
/// takes lines again, a `log_lines_dropped` line says how many went.
public final class Log: Sendable {
    /// Lines waiting for a stalled reader, at most; beyond it they are dropped.
    public static let bufferLimit = 64 << 10
    /// The largest piece one write hands the descriptor (`PIPE_BUF` on Linux).
    static let chunkBytes = 4096

    /// The threshold; changed on a reload (`log_level`), from any thread.
    public var level: LogLevel {
        get { LogLevel(rawValue: levelValue.load(ordering: .relaxed)) ?? .info }
        set { levelValue.store(newValue.rawValue, ordering: .relaxed) }
    }
    /// Lines dropped since start because the reader did not take them.
    public var droppedLines: Int { output.withLock { $0.droppedTotal } }
    /// Bytes written by the log but not yet taken by the reader.
    public var bufferedBytes: Int { output.withLock { $0.pending.count - $0.head } }

    private let levelValue: Atomic<Int>
    private let fd: Int32
    /// Per key, the current window of `limited` events.
    private let windows = Mutex<[String: LimitWindow]>([:])
    private let output = Mutex<Output>(Output())

    private struct LimitWindow {
        var start: Double
        var emitted: Int
        var suppressed: Int
    }

    /// The bytes not yet written (from `head`) and what was dropped.
    private struct Output {
        var pending: [UInt8] = []
        var head = 0
        /// Dropped since the last `log_lines_dropped` line.
        var dropped = 0
        var droppedTotal = 0
        /// The flusher is running (it stops when nothing is left).
        var flushing = false
        /// The descriptor failed for good (its reader is gone): nothing is
        /// written any more, every line is counted as dropped.
        var broken = false

        var buffered: Int { pending.count - head }
    }

    /// - Parameter fd: where lines go; stdout unless a test wants otherwise.
    public init(level: LogLevel = .info, fd: Int32 = 1) {
        self.levelValue = Atomic(level.rawValue)
        self.fd = fd
    }

    public func debug(_ message: String, _ fields: KeyValuePairs<String, String> = [:]) { log(.debug, message, fields) }
    public func info(_ message: String, _ fields: KeyValuePairs<String, String> = [:]) { log(.info, message, fields) }
    public func warning(_ message: String, _ fields: KeyValuePairs<String, String> = [:]) { log(.warning, message, fields) }
    public func error(_ message: String, _ fields: KeyValuePairs<String, String> = [:]) { log(.error, message, fields) }

    public func log(_ level: LogLevel, _ message: String, _ fields: KeyValuePairs<String, String> = [:]) {
        guard level >= self.level else { return }
        write(Log.format(level, message, Array(fields)))
    }

    /// As `log`, with fields known only at run time.
    public func log(_ level: LogLevel, _ message: String, fields: [(String, String)]) {
        guard level >= self.level else { return }
        write(Log.format(level, message, fields.map { (key: $0.0, value: $0.1) }))
    }

    public func info(_ message: String, fields: [(String, String)]) { log(.info, message, fields: fields) }

    /// Logs at most `burst` events of one `key` per `window` seconds; the
    /// rest are counted and the count rides along (`suppressed=N`) on the next
    /// event that is let through. For input that a misbehaving meter can send
    /// a thousand times a second.
    public func limited(_ level: LogLevel, key: String, _ message: String, _ fields: KeyValuePairs<String, String> = [:],
                        burst: Int = 5, window: Double = 60) {
        limited(level, key: key, message, fields: fields.map { ($0.key, $0.value) }, burst: burst, window: window)
    }

    /// As `limited`, with fields known only at run time.
    public func limited(_ level: LogLevel, key: String, _ message: String, fields: [(String, String)],
                        burst: Int = 5, window: Double = 60) {
        guard level >= self.level else { return }
        let now = Double(MonotonicInstant.now().nanoseconds) / 1e9
        let suppressed: Int? = windows.withLock { windows in
            var w = windows[key] ?? LimitWindow(start: now, emitted: 0, suppressed: 0)
            if now - w.start >= window {
                w.start = now
                w.emitted = 0
            }
            guard w.emitted < burst else {
                w.suppressed += 1
                windows[key] = w
                return nil
            }
            w.emitted += 1
            let count = w.suppressed
            w.suppressed = 0
            windows[key] = w
            return count
        }
        guard let suppressed else { return }
        var all = fields.map { (key: $0.0, value: $0.1) }
        if suppressed > 0 { all.append((key: "suppressed", value: String(suppressed))) }
        write(Log.format(level, message, all))
    }

    /// Writes `text` and a newline as it is (not logfmt): the diagnostics that
    /// stop start-up go to standard error this way.
    public func write(raw text: String) { write(text) }

    /// Waits up to `timeout` seconds for the reader to take what is buffered
    /// (at shutdown, so that the last lines are not lost with the process).
    public func flush(timeout: Double = 1) {
        let deadline = MonotonicInstant.now().adding(seconds: timeout)
        output.withLock { out in
            while true {
                drain(&out)
                if out.buffered == 0 {
                    if out.dropped == 0 || out.broken { return }
                    append(Self.droppedReport(out.dropped), to: &out)
                    out.dropped = 0
                    continue
                }
                let left = deadline.seconds(since: MonotonicInstant.now())
                guard left > 0 else { return }
                var p = pollfd(fd: fd, events: Int16(POLLOUT), revents: 0)
                if poll(&p, 1, Int32(min(left * 1000, 100).rounded(.up))) < 0 && errno != EINTR { return }
            }
        }
    }

    private func write(_ line: String) {
        var bytes = Array(line.utf8)
        bytes.append(UInt8(ascii: "\n"))
        output.withLock { out in
            if out.broken {
                out.droppedTotal += 1
                return
            }
            drain(&out)
            if out.dropped > 0 {
                // The count goes first, when it fits with the line.
                let report = Self.droppedReport(out.dropped)
                if out.buffered + report.utf8.count + 1 + bytes.count <= Self.bufferLimit {
                    out.dropped = 0
                    append(report, to: &out)
                }
            }
            if out.dropped == 0 && out.buffered + bytes.count <= Self.bufferLimit {
                out.pending.append(contentsOf: bytes)
                drain(&out)
            } else {
                out.dropped += 1
                out.droppedTotal += 1
            }
            startFlusher(&out)
        }
    }

    /// Leaves what the reader did not take to a flusher that waits for it.
    private func startFlusher(_ out: inout Output) {
        guard out.buffered > 0 || out.dropped > 0, !out.flushing else { return }
        out.flushing = true
        // A thread of its own, not a dispatch queue: a pool busy elsewhere
        // must not leave the log's lines behind.
        LoopThread.spawn(name: "log-flush") { [self] in
            while true {
                let done = output.withLock { out in
                    drain(&out)
                    if out.buffered == 0 && out.dropped > 0 && !out.broken {
                        append(Self.droppedReport(out.dropped), to: &out)
                        out.dropped = 0
                        drain(&out)
                    }
                    if out.broken || (out.buffered == 0 && out.dropped == 0) { out.flushing = false }
                    return !out.flushing
                }
                if done { return }
                // Outside the lock: the loop's lines go on into the buffer meanwhile.
                var p = pollfd(fd: fd, events: Int16(POLLOUT), revents: 0)
                _ = poll(&p, 1, 1000)
            }
        }.detach()
    }

    private func append(_ line: String, to out: inout Output) {
        out.pending.append(contentsOf: line.utf8)
        out.pending.append(UInt8(ascii: "\n"))
    }

    static func droppedReport(_ count: Int) -> String {
        format(.warning, "log_lines_dropped", [("count", String(count)), ("detail", "standard output did not take them in time")])
    }

    /// Writes what the descriptor takes without waiting. A descriptor that
    /// fails for good (its reader closed it) loses the buffer, counted.
    private func drain(_ out: inout Output) {
        while out.head < out.pending.count {
            var p = pollfd(fd: fd, events: Int16(POLLOUT), revents: 0)
            let ready = poll(&p, 1, 0)
            if ready < 0 && errno == EINTR { continue }
            guard ready > 0 else { break }
            if p.revents & Int16(POLLERR | POLLNVAL) != 0 {
                discard(&out)
                break
            }
            let count = min(out.pending.count - out.head, Self.chunkBytes)
            let n = out.pending.withUnsafeBytes { Glibc.write(fd, $0.baseAddress! + out.head, count) }
            if n < 0 {
                if errno == EINTR { continue }
                if errno == EAGAIN { break }
                discard(&out)
                break
            }
            out.head += n
        }
        if out.head == out.pending.count {
            out.pending.removeAll(keepingCapacity: out.pending.capacity <= 65_536)
            out.head = 0
        } else if out.head >= 65_536 {
            out.pending.removeFirst(out.head)
            out.head = 0
        }
    }

    /// The reader is gone: what is buffered can never be written, nor
    /// anything after it.
    private func discard(_ out: inout Output) {
        out.droppedTotal += out.pending[out.head...].count { $0 == UInt8(ascii: "\n") }
        out.pending.removeAll()
        out.head = 0
        out.broken = true
    }

    static func format(_ level: LogLevel, _ message: String, _ fields: [(key: String, value: String)]) -> String {
        var line = "<\(level.syslogPriority)>level=\(level) msg=\(quoted(message))"
        for (key, value) in fields {
            line += " \(key)=\(quoted(value))"
        }
        return line
    }

    /// A logfmt value: bare when it is plain, otherwise in quotes with `"`, `\`
    /// and control characters escaped.
    static func quoted(_ value: String) -> String {
        let plain = !value.isEmpty && value.unicodeScalars.allSatisfy { c in
            c.value > 0x20 && c.value != 0x7F && c != "\"" && c != "=" && c != "\\"
        }
        if plain { return value }
        var out = "\""
        for c in value.unicodeScalars {
            switch c {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            default:
                if c.value < 0x20 || c.value == 0x7F {
                    out += "\\u" + String(repeating: "0", count: 4 - String(c.value, radix: 16).count) + String(c.value, radix: 16)
                } else {
                    out.unicodeScalars.append(c)
                }
            }
        }
        return out + "\""
    }
}
