#if canImport(Glibc)
import Glibc
#endif
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
}

/// One event per line on stdout, in logfmt, for journald:
/// `level=warning msg="dropped input" reason=malformed topic=MQTT_RT_DATA`.
///
/// Thread-safe: a line is formatted outside the lock (a `Mutex`) and written with one
/// `write(2)`, so lines from different threads never interleave. Values with
/// spaces, quotes, `=` or control characters are quoted and escaped, so a
/// meter's payload can never forge a field or a line.
public final class Log: @unchecked Sendable {
    public let level: LogLevel
    private let fd: Int32
    /// Per key, the current window of `limited` events.
    private let windows = Mutex<[String: LimitWindow]>([:])
    /// One line at a time, even when a write is cut short and resumed.
    private let writing = Mutex<Void>(())

    private struct LimitWindow {
        var start: Double
        var emitted: Int
        var suppressed: Int
    }

    /// - Parameter fd: where lines go; stdout unless a test wants otherwise.
    public init(level: LogLevel = .info, fd: Int32 = 1) {
        self.level = level
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

    /// Logs at most `burst` events of one `key` per `window` seconds; the
    /// rest are counted and the count rides along (`suppressed=N`) on the next
    /// event that is let through. For input that a misbehaving meter can send
    /// a thousand times a second.
    public func limited(_ level: LogLevel, key: String, _ message: String, _ fields: KeyValuePairs<String, String> = [:],
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
        var all = Array(fields)
        if suppressed > 0 { all.append(("suppressed", String(suppressed))) }
        write(Log.format(level, message, all))
    }

    /// Writes `text` and a newline as it is (not logfmt): the diagnostics that
    /// stop start-up go to standard error this way.
    public func write(raw text: String) { write(text) }

    private func write(_ line: String) {
        var bytes = Array(line.utf8)
        bytes.append(UInt8(ascii: "\n"))
        writing.withLock { _ in
            bytes.withUnsafeBytes { buffer in
                var offset = 0
                while offset < buffer.count {
                    let n = Glibc.write(fd, buffer.baseAddress! + offset, buffer.count - offset)
                    if n <= 0 {
                        if n < 0 && errno == EINTR { continue }
                        return
                    }
                    offset += n
                }
            }
        }
    }

    static func format(_ level: LogLevel, _ message: String, _ fields: [(key: String, value: String)]) -> String {
        var line = "level=\(level) msg=\(quoted(message))"
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
