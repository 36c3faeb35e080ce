/// Replays a capture through an engine: the stream format of golden cases and
/// of `rulecheck run`.
///
/// Input, one message a line: `TOPIC JSON` (split at the first space; the
/// payload is every byte after it). Blank lines and lines starting with `#`
/// are skipped. Two directives move the replay clock, which the engine sees
/// as `now`: `@now yyyyMMddHHmmss` and `@advance SECONDS`.
///
/// Output, one line per event, in order:
/// - `TOPIC PAYLOAD` — a message, payload byte for byte;
/// - `+ TOPIC PAYLOAD` — a retained message (`+ TOPIC` alone: empty retained
///   payload, which deletes a retained message);
/// - `# drop REASON TOPIC: DETAIL` — a message or split set that was dropped.
/// `+` and `#` can never start a topic one publishes to, so the marks are unambiguous.
public struct Replay {
    public static let defaultClock = "20260112170000"
    static let clockFormat = ClockFormat("yyyyMMddHHmmss")!

    public struct LineError: Error, CustomStringConvertible {
        public var line: Int
        public var message: String
        public var description: String { "line \(line): \(message)" }
    }

    public let engine: Engine
    public var now: Instant
    public var showDrops = true

    public init(engine: Engine, now: Instant) {
        self.engine = engine
        self.now = now
    }

    /// Parses `yyyyMMddHHmmss` (local time at UTC offset 0) into an instant.
    public static func instant(_ clock: String) -> Instant? {
        Array(clock.utf8).withUnsafeBytes { clockFormat.parse($0) }.map { Instant(epochMillis: $0 * 1000) }
    }

    /// Replays `input`, calling `emit` with each output line (without newline).
    public mutating func run(_ input: [UInt8], emit: (String) -> Void) throws(LineError) {
        var out = ProcessOutput()
        var lineNumber = 0
        var start = 0
        while start < input.count {
            var end = start
            while end < input.count && input[end] != UInt8(ascii: "\n") { end += 1 }
            lineNumber += 1
            var lineEnd = end
            if lineEnd > start && input[lineEnd - 1] == UInt8(ascii: "\r") { lineEnd -= 1 }
            let line = input[start..<lineEnd]
            start = end + 1
            guard let first = line.first, first != UInt8(ascii: "#") else { continue }
            if first == UInt8(ascii: "@") {
                try directive(String(decoding: line, as: UTF8.self), lineNumber)
                out.removeAll()
                engine.expire(now: now, into: &out)
                Replay.write(out, showDrops: showDrops, emit: emit)
                continue
            }
            guard let space = line.firstIndex(of: UInt8(ascii: " ")) else {
                throw LineError(line: lineNumber, message: "expected 'TOPIC JSON'")
            }
            let topic = String(decoding: line[line.startIndex..<space], as: UTF8.self)
            out.removeAll()
            line[(space + 1)...].withUnsafeBytes { engine.process(topic: topic, payload: $0, now: now, into: &out) }
            Replay.write(out, showDrops: showDrops, emit: emit)
        }
    }

    private mutating func directive(_ text: String, _ line: Int) throws(LineError) {
        let parts = text.split(separator: " ")
        switch (parts.first, parts.count) {
        case ("@now", 2):
            guard let t = Replay.instant(String(parts[1])) else { throw LineError(line: line, message: "expected @now yyyyMMddHHmmss") }
            now = t
        case ("@advance", 2):
            guard let s = Double(parts[1]), s >= 0 else { throw LineError(line: line, message: "expected @advance SECONDS") }
            now = now.adding(seconds: s)
        default:
            throw LineError(line: line, message: "unknown directive '\(text)' (known: @now yyyyMMddHHmmss, @advance SECONDS)")
        }
    }

    public static func write(_ out: ProcessOutput, showDrops: Bool, emit: (String) -> Void) {
        // Drops of expired sets come first: they were decided before the message arrived.
        if showDrops {
            for d in out.drops { emit("# drop \(d.reason.rawValue) \(d.topic): \(d.detail)") }
        }
        for m in out.messages { emit(line(m)) }
    }

    public static func line(_ m: Outgoing) -> String {
        let payload = String(decoding: m.payload, as: UTF8.self)
        let body = m.payload.isEmpty ? m.topic : "\(m.topic) \(payload)"
        return m.retain ? "+ \(body)" : body
    }
}
