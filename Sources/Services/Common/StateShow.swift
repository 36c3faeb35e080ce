import JSON
import RuleEngine
import SQLite

/// `config-sender show [ID]` and `kpm33b-proxy show [ID]`: what a service's
/// state database says, for a person (a table, or one meter's detail) or a
/// program (`--json`: one JSON object per line, one line per meter). Reads
/// beside a running service (SQLite's WAL lets it), writes nothing.
public enum StateShow {
    public struct Failure: Error, Sendable {
        public var message: String
        /// The process's exit status: 1 (not found), 2 (cannot read).
        public var status: Int32
    }

    // MARK: config-sender

    /// config-sender's meter records in `stateDirectory`; `id`: that meter only.
    public static func configSender(stateDirectory: String, id: String?, json: Bool) throws(Failure) -> String {
        let path = stateDirectory + "/" + ConfigStateStore.fileName
        let records: [String: MeterRecord]
        do {
            records = try ConfigStateStore.readRecords(path: path)
        } catch {
            throw Failure(message: "cannot read the state database: \(error.message)", status: 2)
        }
        let ids: [String]
        if let id {
            guard records[id] != nil else {
                throw Failure(message: "\(path) has no record of meter \(id) (it was never configured here)", status: 1)
            }
            ids = [id]
        } else {
            ids = records.keys.sorted()
        }
        if json { return ids.map { line(jsonOf($0, records[$0]!)) }.joined() }
        if let id { return detail(id, records[id]!) }
        var rows = [["METER", "ACKNOWLEDGED", "SETTINGS", "COMMANDS", "LAST ERROR"]]
        for id in ids {
            let r = records[id]!
            let outcomes = r.commands.keys.sorted().map { "\($0)=\(r.commands[$0]!.outcome.rawValue)" }
            rows.append([id, r.acknowledgedDate ?? "-", r.settings.keys.sorted().map { "\($0)=\(r.settings[$0]!)" }.joined(separator: ","),
                         outcomes.joined(separator: " "), r.lastError ?? ""])
        }
        return table(rows) + "\(ids.count) meters, \(ids.filter { records[$0]!.lastError != nil }.count) with an error (\(path))\n"
    }

    static func jsonOf(_ id: String, _ r: MeterRecord) -> JSONValue {
        var commands = JSONObject()
        for name in r.commands.keys.sorted() {
            let c = r.commands[name]!
            commands[name] = .object(JSONObject([
                ("result", .string(c.outcome.rawValue)), ("value", c.value.map(JSONValue.string) ?? .null), ("date", .string(c.date)),
                ("at_ms", .integer(c.at)), ("oprid", c.operationID.map(JSONValue.string) ?? .null),
                ("msg", c.message.map(JSONValue.string) ?? .null),
            ]))
        }
        return .object(JSONObject([
            ("id", .string(id)), ("digest", r.digest.map(JSONValue.string) ?? .null),
            ("settings", .object(JSONObject(r.settings.keys.sorted().map { ($0, JSONValue.integer(Int64(r.settings[$0]!))) }))),
            ("acknowledged_date", r.acknowledgedDate.map(JSONValue.string) ?? .null),
            ("acknowledged_at_ms", r.acknowledgedAt.map(JSONValue.integer) ?? .null),
            ("last_clock_sent_at_ms", r.lastClockSentAt.map(JSONValue.integer) ?? .null),
            ("last_error", r.lastError.map(JSONValue.string) ?? .null),
            ("commands", .object(commands)),
        ]))
    }

    private static func detail(_ id: String, _ r: MeterRecord) -> String {
        var out = table([
            ["meter", id],
            ["acknowledged", r.acknowledgedDate.map { "\($0) (\(time(r.acknowledgedAt)))" } ?? "never in full"],
            ["settings digest", r.digest ?? "-"],
            ["settings", r.settings.keys.sorted().map { "\($0)=\(r.settings[$0]!)" }.joined(separator: ", ")],
            ["clock last sent", time(r.lastClockSentAt)],
            ["last error", r.lastError ?? "-"],
        ])
        out += "\n"
        var rows = [["COMMAND", "RESULT", "VALUE", "DATE", "AT", "OPRID", "MESSAGE"]]
        for name in r.commands.keys.sorted() {
            let c = r.commands[name]!
            rows.append([name, c.outcome.rawValue, c.value ?? "-", c.date, time(c.at), c.operationID ?? "-", c.message ?? ""])
        }
        return out + table(rows)
    }

    // MARK: kpm33b-proxy

    /// The proxy's guarded counters in `stateDirectory`; `id`: that meter only.
    public static func proxy(stateDirectory: String, id: String?, json: Bool) throws(Failure) -> String {
        let path = stateDirectory + "/" + CounterStore.fileName
        var counters: [CounterSnapshot]
        do {
            counters = try CounterStore.readCounters(path: path)
        } catch {
            throw Failure(message: "cannot read the counters database: \(error.message)", status: 2)
        }
        if let id {
            counters = counters.filter { $0.device == id }
            guard !counters.isEmpty else {
                throw Failure(message: "\(path) has no counter of meter \(id) (no guarded reading forwarded yet)", status: 1)
            }
        }
        if json {
            var byMeter: [(String, JSONObject)] = []
            for c in counters {
                let value: JSONValue = .object(["value": .real(c.value), "time": .integer(c.time)])
                if byMeter.last?.0 == c.device { byMeter[byMeter.count - 1].1[c.field] = value } else { byMeter.append((c.device, [c.field: value])) }
            }
            return byMeter.map { line(.object(["id": .string($0.0), "counters": .object($0.1)])) }.joined()
        }
        var rows = [["METER", "FIELD", "LAST FORWARDED", "METER'S CLOCK"]]
        for c in counters { rows.append([c.device, c.field, String(c.value), meterClock(c.time)]) }
        return table(rows) + "\(Set(counters.map(\.device)).count) meters, \(counters.count) guarded counters (\(path))\n"
    }

    // MARK: Formatting

    private static func line(_ value: JSONValue) -> String { String(decoding: value.serialized(), as: UTF8.self) + "\n" }

    /// Columns padded to their widest cell, two spaces apart; the last one unpadded.
    static func table(_ rows: [[String]]) -> String {
        guard let columns = rows.map(\.count).max() else { return "" }
        var widths = [Int](repeating: 0, count: columns)
        for row in rows { for (i, cell) in row.enumerated() { widths[i] = max(widths[i], cell.count) } }
        return rows.map { row in
            row.enumerated().map { i, cell in
                i == row.count - 1 ? cell : cell + String(repeating: " ", count: widths[i] - cell.count)
            }.joined(separator: "  ") + "\n"
        }.joined()
    }

    static let utcFormat = ClockFormat("yyyy-MM-dd HH:mm:ss")!

    /// Epoch milliseconds as UTC.
    private static func time(_ millis: Int64?) -> String {
        guard let millis else { return "-" }
        return utcFormat.render(Instant(epochMillis: millis)) + " UTC"
    }

    /// The meter's own clock (local seconds since 1970, as it wrote it).
    private static func meterClock(_ seconds: Int64) -> String {
        utcFormat.render(Instant(epochMillis: seconds * 1000))
    }
}
