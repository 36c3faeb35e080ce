import RuleEngine

/// Replays a capture through an engine: the stream format of golden cases and
/// of `rulecheck run`.
///
/// Input, one message a line: `TOPIC JSON` (split at the first space; the
/// payload is every byte after it). Blank lines and lines starting with `#`
/// are skipped. Two directives move the replay clock, which the engine sees
/// as `now`: `@now yyyyMMddHHmmss` (wall-clock time in the replay's zone)
/// and `@advance SECONDS`.
///
/// A line may also start with the time it was received, the way
/// `mosquitto_sub -F '%U %t %p'` (Unix time with a fraction,
/// `1768233600.123456789`) or `-F '%I %t %p'` (ISO 8601,
/// `2026-01-12T17:00:00+0100`) writes it: the replay clock then follows the
/// capture. Meters keep local time, so the clock also carries a UTC offset:
/// `zone` (the machine's for `rulecheck run`, UTC for golden cases), or the
/// one an `@tz ±HH:MM` line sets.
///
/// Output, one line per event, in order:
/// - `TOPIC PAYLOAD` — a message, payload byte for byte;
/// - `+ TOPIC PAYLOAD` — a retained message (`+ TOPIC` alone: empty retained
///   payload, which deletes a retained message);
/// - `# drop REASON TOPIC: DETAIL` — a message or split set that was dropped;
/// and from `end`: `# pending incomplete TOPIC: DETAIL` for each split set
/// still waiting for parts, then `# summary: forwarded N, retained N, dropped
/// N (REASON N, …), pending N`. `@expect-drops` and `@expect-clock-offset`
/// lines tell a golden case's checks that no forwarded message, or a clock
/// off by more than a day, is what the case is about.
/// `+` and `#` can never start a topic one publishes to, so the marks are unambiguous.
public struct Replay {
    public static let defaultClock = "20260112170000"
    static let clockFormat = ClockFormat("yyyyMMddHHmmss")!
    static let isoClock = ClockFormat("yyyy-MM-dd HH:mm:ss")!

    public struct LineError: Error, CustomStringConvertible {
        public var line: Int
        public var message: String
        public var description: String { "line \(line): \(message)" }
    }

    /// The packs' engines (one pack: its engine alone, no routing).
    public let router: PackRouter
    /// The first pack's engine.
    public var engine: Engine { router.engines[0] }
    public var now: Instant
    public var showDrops = true
    /// What the replay forwarded (clean data messages), retained
    /// (announcements) and dropped per reason so far: `end` prints it.
    public private(set) var forwarded = 0
    public private(set) var retained = 0
    public private(set) var dropped: [DropReason: Int] = [:]
    /// The largest clock offset a discovery message reported, in seconds.
    public private(set) var largestClockOffset: Int64 = 0
    /// What the input said it expects (`@expect-drops`, `@expect-clock-offset`).
    public private(set) var expectations: Set<Expectation> = []

    /// What a golden case may declare so that a surprising result is not taken for a mistake.
    public enum Expectation: String, Sendable, CaseIterable {
        /// The case forwards no clean message (every reading dropped on purpose).
        case drops = "@expect-drops"
        /// A meter's clock is off by more than a day (a clock never set, on purpose).
        case clockOffset = "@expect-clock-offset"
    }
    /// The site's UTC offset in seconds at a moment (epoch seconds): meters
    /// keep local time. `@tz` replaces it with a fixed offset.
    public var zone: @Sendable (Int64) -> Int

    public init(router: PackRouter, now: Instant, zone: @escaping @Sendable (Int64) -> Int = { _ in 0 }) {
        self.router = router
        self.now = now
        self.zone = zone
    }

    /// Parses `±HH:MM`, `±HHMM`, `±HH`, `Z` or `UTC` into seconds east of UTC.
    public static func utcOffset(_ text: some StringProtocol) -> Int? {
        if text == "Z" || text == "UTC" { return 0 }
        let bytes = Array(text.utf8)
        guard let sign = bytes.first, sign == UInt8(ascii: "+") || sign == UInt8(ascii: "-") else { return nil }
        let digits = bytes.dropFirst().filter { $0 != UInt8(ascii: ":") }
        guard digits.count == 2 || digits.count == 4, digits.allSatisfy({ $0 &- 48 < 10 }),
              bytes.count == 1 + digits.count + (bytes.contains(UInt8(ascii: ":")) ? 1 : 0),
              !bytes.contains(UInt8(ascii: ":")) || (bytes.count == 6 && bytes[3] == UInt8(ascii: ":")) else { return nil }
        let v = digits.map { Int($0 - 48) }
        let hours = v[0] * 10 + v[1], minutes = digits.count == 4 ? v[2] * 10 + v[3] : 0
        guard hours <= 18, minutes < 60 else { return nil }
        return (sign == UInt8(ascii: "-") ? -1 : 1) * (hours * 3600 + minutes * 60)
    }

    /// The receive time at the start of a capture line, if it has one:
    /// `%U` (digits, `.`, digits) or `%I` (ISO 8601 with an offset or `Z`).
    /// Returns milliseconds since 1970 and the length of the time token.
    static func receiveTime(_ line: ArraySlice<UInt8>) -> (epochMillis: Int64, length: Int)? {
        guard let space = line.firstIndex(of: UInt8(ascii: " ")) else { return nil }
        let token = Array(line[line.startIndex..<space])
        guard token.count >= 3, line[(space + 1)...].contains(UInt8(ascii: " ")) else { return nil }
        func isDigit(_ b: UInt8) -> Bool { b &- 48 < 10 }
        if let dot = token.firstIndex(of: UInt8(ascii: ".")), dot >= 1, dot < token.count - 1,
           token.indices.allSatisfy({ $0 == dot || isDigit(token[$0]) }), dot <= 12 {
            // %U: seconds, then a fraction of up to nanoseconds.
            var seconds: Int64 = 0
            for b in token[..<dot] { seconds = seconds * 10 + Int64(b - 48) }
            var millis: Int64 = 0
            for k in 0..<3 { millis = millis * 10 + (dot + 1 + k < token.count ? Int64(token[dot + 1 + k] - 48) : 0) }
            return (seconds * 1000 + millis, token.count)
        }
        // %I: yyyy-MM-ddTHH:mm:ss[.fff](Z|±HHMM|±HH:MM)
        guard token.count >= 20, token[4] == UInt8(ascii: "-"), token[7] == UInt8(ascii: "-"), token[10] == UInt8(ascii: "T"),
              token[13] == UInt8(ascii: ":"), token[16] == UInt8(ascii: ":") else { return nil }
        var clock = Array(token[0..<19])
        clock[10] = UInt8(ascii: " ")     // a clock format has no letters
        guard let local = clock.withUnsafeBytes({ isoClock.parse($0) }) else { return nil }
        var at = 19
        var millis: Int64 = 0
        if at < token.count, token[at] == UInt8(ascii: ".") {
            at += 1
            var k = 0
            while at < token.count, isDigit(token[at]) {
                if k < 3 { millis = millis * 10 + Int64(token[at] - 48) }
                k += 1
                at += 1
            }
            guard k > 0 else { return nil }
            for _ in k..<max(k, 3) { millis *= 10 }
        }
        guard at < token.count, let offset = utcOffset(String(decoding: token[at...], as: UTF8.self)) else { return nil }
        return ((local - Int64(offset)) * 1000 + millis, token.count)
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
                router.expire(now: now, into: &out)
                record(out, emit: emit)
                continue
            }
            var message = line
            if let (epochMillis, length) = Replay.receiveTime(line) {
                now = Instant(epochMillis: epochMillis, utcOffsetSeconds: zone(epochMillis / 1000))
                message = line[(line.startIndex + length + 1)...]
            }
            guard let space = message.firstIndex(of: UInt8(ascii: " ")) else {
                throw LineError(line: lineNumber, message: "expected 'TOPIC JSON' or 'TIME TOPIC JSON'")
            }
            let topic = String(decoding: message[message.startIndex..<space], as: UTF8.self)
            out.removeAll()
            message[(space + 1)...].withUnsafeBytes { router.process(topic: topic, payload: $0, now: now, into: &out) }
            record(out, emit: emit)
        }
    }

    /// The end of the input: one `# pending incomplete …` line per split set
    /// still waiting for parts, then `# summary: …` with what was forwarded,
    /// retained and dropped per reason.
    public func end(emit: (String) -> Void) {
        let pending = router.pendingSets
        for set in pending {
            emit("# pending \(DropReason.incomplete.rawValue) \(set.topic): \(set.id): \(set.parts) of a split set, not complete at the end of the input")
        }
        let drops = DropReason.allCases.compactMap { reason in dropped[reason].map { "\(reason.rawValue) \($0)" } }
        let total = dropped.values.reduce(0, +)
        emit("# summary: forwarded \(forwarded), retained \(retained), dropped \(total)"
             + (drops.isEmpty ? "" : " (\(drops.joined(separator: ", ")))") + ", pending \(pending.count)")
    }

    private mutating func record(_ out: ProcessOutput, emit: (String) -> Void) {
        for d in out.drops { dropped[d.reason, default: 0] += 1 }
        for m in out.messages {
            if m.retain { retained += 1 } else if m.kind == .data { forwarded += 1 }
            if m.kind == .discovery, let offset = Replay.clockOffset(m.payload) { largestClockOffset = max(largestClockOffset, offset) }
        }
        Replay.write(out, showDrops: showDrops, emit: emit)
    }

    /// The magnitude of `"clock_offset_s":N` in a discovery payload, if it has one.
    static func clockOffset(_ payload: [UInt8]) -> Int64? {
        let key = Array("\"clock_offset_s\":".utf8)
        guard payload.count > key.count,
              let at = (0...(payload.count - key.count)).first(where: { payload[$0..<($0 + key.count)].elementsEqual(key) }) else { return nil }
        var i = at + key.count
        if i < payload.count && payload[i] == UInt8(ascii: "-") { i += 1 }
        var value: Int64 = 0
        var digits = 0
        while i < payload.count, payload[i] &- 48 < 10, digits < 18 {
            value = value * 10 + Int64(payload[i] - 48)
            digits += 1
            i += 1
        }
        return digits > 0 ? value : nil
    }

    private mutating func directive(_ text: String, _ line: Int) throws(LineError) {
        let parts = text.split(separator: " ")
        switch (parts.first, parts.count) {
        case ("@now", 2):
            guard let t = Replay.instant(String(parts[1])) else { throw LineError(line: line, message: "expected @now yyyyMMddHHmmss") }
            // The wall-clock time of the replay's zone (UTC unless @tz or the machine says otherwise).
            let local = t.epochMillis / 1000
            let offset = zone(local - Int64(zone(local)))
            now = Instant(epochMillis: t.epochMillis - Int64(offset) * 1000, utcOffsetSeconds: offset)
        case ("@advance", 2):
            guard let s = Double(parts[1]), s >= 0 else { throw LineError(line: line, message: "expected @advance SECONDS") }
            now = now.adding(seconds: s)
        case ("@tz", 2):
            guard let offset = Replay.utcOffset(parts[1]) else { throw LineError(line: line, message: "expected @tz ±HH:MM (or Z)") }
            zone = { _ in offset }
            now.utcOffsetSeconds = offset
        case (let name?, 1) where Expectation(rawValue: String(name)) != nil:
            expectations.insert(Expectation(rawValue: String(name))!)
        default:
            throw LineError(line: line, message: "unknown directive '\(text)' (known: @now yyyyMMddHHmmss, @advance SECONDS, @tz ±HH:MM, "
                            + Expectation.allCases.map(\.rawValue).joined(separator: ", ") + ")")
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
