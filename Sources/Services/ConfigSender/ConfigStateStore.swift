#if canImport(Glibc)
import Glibc
#endif
import JSON
import RuleEngine

/// The config sender's state file, `STATE_DIR/config-sender-state.json`.
///
/// Written atomically: the whole document goes to a temporary file in the same
/// directory, which is fsynced and renamed over the old one, and then the
/// directory is fsynced so the rename itself survives a power cut. A reader
/// therefore sees either the old or the new file, never a mix. A temporary file
/// found at start-up is the trace of an interrupted write (kill -9, power
/// loss) and is deleted; the file it was meant to replace is still whole.
///
/// A state file that cannot be read is moved aside (`…json.corrupt-<millis>`)
/// with a warning and the service starts fresh: at worst every meter is
/// configured once more.
public struct ConfigStateStore: Sendable {
    public static let fileName = "config-sender-state.json"
    public static let formatVersion: Int64 = 1

    public let directory: String
    /// The state file.
    public let path: String
    /// Where a write goes before it is renamed over `path`.
    public let temporaryPath: String

    public init(directory: String) {
        self.directory = directory
        // Stored, not computed: a write allocates nothing but what the error path needs.
        path = directory + "/" + ConfigStateStore.fileName
        temporaryPath = directory + "/." + ConfigStateStore.fileName + ".tmp"
    }

    /// Reads the state; never fails for bad content. The events say what was repaired.
    /// Throws only when the directory cannot be created.
    public func load(now: Instant) throws(StateStoreError) -> (records: [String: MeterRecord], events: [ConfigEvent]) {
        try createDirectory()
        var events: [ConfigEvent] = []
        if FileSystem.exists(temporaryPath) {
            _ = unlink(temporaryPath)
            events.append(ConfigEvent(.warning, "state_temp_removed", [
                ("file", temporaryPath), ("reason", "left by an interrupted write; the last complete state is used"),
            ]))
        }
        guard FileSystem.exists(path) else {
            events.append(ConfigEvent(.info, "state_new", [("file", path)]))
            return ([:], events)
        }
        do throws(StateStoreError) {
            var failure: Int32 = 0
            guard let data = FileSystem.read(path, failure: &failure) else {
                throw StateStoreError("cannot read the file: \(String(cString: strerror(failure)))")
            }
            let (records, skipped) = try ConfigStateStore.decode(data)
            for (id, why) in skipped {
                events.append(ConfigEvent(.warning, "state_meter_skipped", [("meter", id), ("reason", why)]))
            }
            events.append(ConfigEvent(.info, "state_loaded", [("file", path), ("meters", String(records.count))]))
            return (records, events)
        } catch {
            let aside = path + ".corrupt-\(now.epochMillis)"
            let moved = rename(path, aside) == 0
            events.append(ConfigEvent(.warning, "state_corrupt", [
                ("file", path), ("reason", error.message), ("moved_to", moved ? aside : nil),
                ("action", "starting fresh; every meter is configured again"),
            ]))
            if !moved { _ = unlink(path) }
            return ([:], events)
        }
    }

    /// Writes the state atomically (temporary file, fsync, rename, fsync of the directory).
    public func save(_ records: [String: MeterRecord]) throws(StateStoreError) {
        try createDirectory()
        let bytes = ConfigStateStore.encode(records).serialized() + [0x0A]
        try writeAtomically(bytes)
    }

    /// The write itself, exposed so a test can stop half-way (see `writeTemporary`).
    func writeAtomically(_ bytes: [UInt8]) throws(StateStoreError) {
        try writeTemporary(bytes, count: bytes.count)
        guard rename(temporaryPath, path) == 0 else { throw StateStoreError(errno: errno, "rename to \(path)") }
        // The rename is durable only once the directory entry is on disk.
        let dir = open(directory, O_RDONLY)
        if dir >= 0 {
            _ = fsync(dir)
            close(dir)
        }
    }

    /// Writes the first `count` bytes to the temporary file and fsyncs it.
    func writeTemporary(_ bytes: [UInt8], count: Int) throws(StateStoreError) {
        let fd = open(temporaryPath, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        guard fd >= 0 else { throw StateStoreError(errno: errno, "open \(temporaryPath)") }
        var written = 0
        while written < count {
            let n = bytes.withUnsafeBytes { write(fd, $0.baseAddress! + written, count - written) }
            if n < 0 {
                if errno == EINTR { continue }
                let e = errno
                close(fd)
                throw StateStoreError(errno: e, "write \(temporaryPath)")
            }
            written += n
        }
        guard fsync(fd) == 0 else {
            let e = errno
            close(fd)
            throw StateStoreError(errno: e, "fsync \(temporaryPath)")
        }
        close(fd)
    }

    private func createDirectory() throws(StateStoreError) {
        guard FileSystem.makeDirectories(directory) else {
            throw StateStoreError("cannot create the state directory \(directory): \(String(cString: strerror(errno)))")
        }
    }

    // MARK: Format

    /// `{"version":1,"meters":{ID:{…}}}`, meters sorted by id, commands by name.
    public static func encode(_ records: [String: MeterRecord]) -> JSONValue {
        // Thousands of meters: collected, then made an object at once (linear).
        var meters: [(String, JSONValue)] = []
        meters.reserveCapacity(records.count)
        for id in records.keys.sorted() {
            let r = records[id]!
            var m = JSONObject()
            if let v = r.digest { m["digest"] = .string(v) }
            if !r.settings.isEmpty {
                m["settings"] = .object(JSONObject(r.settings.keys.sorted().map { ($0, JSONValue.integer(Int64(r.settings[$0]!))) }))
            }
            if let v = r.acknowledgedDate { m["acknowledged_date"] = .string(v) }
            if let v = r.acknowledgedAt { m["acknowledged_at_ms"] = .integer(v) }
            if let v = r.lastClockSentAt { m["last_clock_sent_at_ms"] = .integer(v) }
            if let v = r.lastError { m["last_error"] = .string(v) }
            var commands = JSONObject()
            for name in r.commands.keys.sorted() {
                let c = r.commands[name]!
                var o = JSONObject()
                o["result"] = .string(c.outcome.rawValue)
                if let v = c.value { o["value"] = .string(v) }
                o["date"] = .string(c.date)
                o["at_ms"] = .integer(c.at)
                if let v = c.operationID { o["oprid"] = .string(v) }
                if let v = c.message { o["msg"] = .string(v) }
                commands[name] = .object(o)
            }
            m["commands"] = .object(commands)
            meters.append((id, .object(m)))
        }
        return .object(["version": .integer(formatVersion), "meters": .object(JSONObject(distinctKeys: meters))])
    }

    /// Reads the format back. Throws when the document as a whole is unusable;
    /// a single malformed meter entry is skipped and reported.
    public static func decode(_ bytes: [UInt8]) throws(StateStoreError) -> (records: [String: MeterRecord], skipped: [(String, String)]) {
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

/// A state file problem, as one sentence.
public struct StateStoreError: Error, Sendable, CustomStringConvertible {
    public var message: String
    public init(_ message: String) { self.message = message }
    init(errno code: Int32, _ what: String) {
        self.message = "\(what): \(String(cString: strerror(code)))"
    }
    public var description: String { message }
}
