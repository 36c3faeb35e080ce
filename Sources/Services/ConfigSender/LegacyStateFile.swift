import JSON
import RuleEngine

/// The JSON state file of earlier releases, `config-sender-state.json`
/// (`{"version":1,"meters":{ID:{…}}}`): only read, once, when
/// `ConfigStateStore` imports it into its database.
enum LegacyStateFile {
    static let formatVersion: Int64 = 1

    /// Reads the JSON state file of earlier releases
    /// (`{"version":1,"meters":{ID:{…}}}`). Throws when the document as a whole
    /// is unusable; a single malformed meter entry is skipped and reported.
    static func decode(_ bytes: [UInt8]) throws(StateStoreError) -> (records: [String: MeterRecord], skipped: [(String, String)]) {
        let root: JSONValue
        do { root = try JSONValue.parse(bytes) } catch { throw StateStoreError("not JSON: \(error)") }
        guard let top = root.objectValue else { throw StateStoreError("not a JSON object") }
        guard let version = top["version"]?.intValue else { throw StateStoreError("no 'version'") }
        guard version == formatVersion else { throw StateStoreError("unknown format version \(version)") }
        guard let meters = top["meters"]?.objectValue else { throw StateStoreError("no 'meters' object") }
        var records: [String: MeterRecord] = [:]
        var skipped: [(String, String)] = []
        for (id, value) in meters {
            do throws(StateStoreError) { records[id] = try decodeMeter(value) } catch { skipped.append((id, error.message)) }
        }
        return (records, skipped)
    }

    private static func decodeMeter(_ value: JSONValue) throws(StateStoreError) -> MeterRecord {
        guard let m = value.objectValue else { throw StateStoreError("not an object") }
        func string(_ key: String, in o: JSONObject) throws(StateStoreError) -> String? {
            guard let v = o[key], !v.isNull else { return nil }
            guard let s = v.stringValue else { throw StateStoreError("'\(key)' is not a string") }
            return s
        }
        func int(_ key: String, in o: JSONObject) throws(StateStoreError) -> Int64? {
            guard let v = o[key], !v.isNull else { return nil }
            guard let i = v.intValue else { throw StateStoreError("'\(key)' is not an integer") }
            return i
        }
        var r = MeterRecord()
        r.digest = try string("digest", in: m)
        r.acknowledgedDate = try string("acknowledged_date", in: m)
        r.acknowledgedAt = try int("acknowledged_at_ms", in: m)
        r.lastClockSentAt = try int("last_clock_sent_at_ms", in: m)
        r.lastError = try string("last_error", in: m)
        if let s = m["settings"] {
            guard let o = s.objectValue else { throw StateStoreError("'settings' is not an object") }
            for (k, v) in o {
                guard let i = v.intValue else { throw StateStoreError("setting '\(k)' is not an integer") }
                r.settings[k] = Int(i)
            }
        }
        if let c = m["commands"] {
            guard let o = c.objectValue else { throw StateStoreError("'commands' is not an object") }
            for (name, v) in o {
                guard let co = v.objectValue else { throw StateStoreError("command '\(name)' is not an object") }
                guard let resultName = try string("result", in: co), let outcome = CommandResult.Outcome(rawValue: resultName) else {
                    throw StateStoreError("command '\(name)' has no valid 'result'")
                }
                guard let date = try string("date", in: co), let at = try int("at_ms", in: co) else {
                    throw StateStoreError("command '\(name)' needs 'date' and 'at_ms'")
                }
                r.commands[name] = CommandResult(outcome: outcome, value: try string("value", in: co), date: date, at: at,
                                                 operationID: try string("oprid", in: co), message: try string("msg", in: co))
            }
        }
        return r
    }
}
