#if canImport(Glibc)
import Glibc
#endif
import JSON
import RuleEngine
import SQLite
import Synchronization

/// The config sender's state database, `STATE_DIR/config-sender.db` (SQLite,
/// schema in docs/state-databases.md): one row per meter in `meters`, one per
/// meter and command in `commands`.
///
/// Writes cost what changed: the planner hands over the meters whose record
/// changed, each with the rows that differ (`MeterRecordChange`), and only
/// those rows are written. They are written on a thread of their own
/// (`StateWriter`), in transactions of at most `batchSize` meters: `submit`
/// never waits for the disk, so a slow disk cannot delay the event loop;
/// only shutdown waits (`flush`). WAL with `synchronous = FULL`: a committed
/// batch survives a power cut (the WAL is fsynced at each commit), so an
/// acknowledged configuration is never sent again because of one.
///
/// The first start after an upgrade imports the JSON state file of earlier
/// releases (`config-sender-state.json`) once and renames it
/// (`….json.imported`). A damaged database (or JSON file) is moved aside
/// (`….corrupt-<millis>`), reported in the log and in `problem` (the status),
/// and the service starts fresh: at worst every meter is configured once more.
public final class ConfigStateStore {
    public static let fileName = "config-sender.db"
    /// The state file of earlier releases, imported once.
    public static let legacyFileName = "config-sender-state.json"
    /// `migrations[i]` brings the schema from `PRAGMA user_version` i to i + 1.
    static let migrations = [
        """
        CREATE TABLE meters (
            id TEXT PRIMARY KEY NOT NULL,
            digest TEXT,
            settings TEXT,
            acknowledged_date TEXT,
            acknowledged_at_ms INTEGER,
            last_clock_sent_at_ms INTEGER,
            last_error TEXT
        ) WITHOUT ROWID;
        CREATE TABLE commands (
            meter TEXT NOT NULL,
            name TEXT NOT NULL,
            result TEXT NOT NULL,
            value TEXT,
            date TEXT NOT NULL,
            at_ms INTEGER NOT NULL,
            oprid TEXT,
            msg TEXT,
            PRIMARY KEY (meter, name)
        ) WITHOUT ROWID;
        """,
    ]

    /// The connection's page cache, in KiB (`PRAGMA cache_size`).
    static let pageCacheKiB = 512

    public let directory: String
    /// The database.
    public let path: String
    /// The JSON state file of earlier releases.
    public let legacyPath: String
    /// Where an interrupted write of the JSON file left its temporary copy.
    let legacyTemporaryPath: String
    /// The database was found damaged at start-up and moved aside: a sentence for the status.
    public private(set) var problem: String?

    private let connection = Connection()
    private let writer: StateWriter<String, MeterRecordChange>

    /// `batchSize`: the most meters one transaction writes. `writeDelaySeconds`
    /// makes every transaction that much slower (tests: a slow disk).
    public init(directory: String, batchSize: Int = 1_000, writeDelaySeconds: Double = 0) {
        self.directory = directory
        path = directory + "/" + ConfigStateStore.fileName
        legacyPath = directory + "/" + ConfigStateStore.legacyFileName
        legacyTemporaryPath = directory + "/." + ConfigStateStore.legacyFileName + ".tmp"
        writer = StateWriter(name: "config-state", batch: batchSize, merge: { $0.merge($1) }) { [connection, path] changes throws(StateStoreError) in
            if writeDelaySeconds > 0 { usleep(UInt32(writeDelaySeconds * 1_000_000)) }
            try connection.write(changes, path: path)
        }
    }

    deinit { writer.stop() }

    /// The open connection's `PRAGMA cache_size` (negative: KiB), nil before `load` (tests).
    var pageCacheSetting: Int64? { connection.open.withLock { try? $0?.database.integer("PRAGMA cache_size") } }

    /// Rows inserted, updated or deleted since the store was opened (tests, benchmarks).
    public var rowsWritten: Int64 { connection.open.withLock { $0?.database.totalChanges ?? 0 } }

    /// Opens the database (creating, migrating, importing or moving it aside as
    /// needed) and reads every record. The events say what was repaired.
    /// Throws when the directory or the database cannot be opened at all.
    public func load(now: Instant) throws(StateStoreError) -> (records: [String: MeterRecord], events: [ConfigEvent]) {
        guard FileSystem.makeDirectories(directory) else {
            throw StateStoreError("cannot create the state directory \(directory): \(String(cString: strerror(errno)))")
        }
        writer.stop()
        var events: [ConfigEvent] = []
        problem = nil
        let path = path, legacyPath = legacyPath, legacyTemporaryPath = legacyTemporaryPath
        // Opened where the writer thread finds it: in the connection's lock.
        let (records, skipped, found, problem) = try connection.open.withLock {
            (open: inout Connection.Open?) throws(StateStoreError) -> ([String: MeterRecord], [(String, String)], [ConfigEvent], String?) in
            open = nil
            var events: [ConfigEvent] = []
            var problem: String?
            let opened = try StateDatabase.open(path: path, synchronous: "FULL", migrations: Self.migrations, now: now)
            if let aside = opened.movedAside {
                problem = "the state database was damaged (\(aside.reason)); moved to \(aside.path), every meter is configured again"
                events.append(ConfigEvent(.warning, "state_corrupt", [
                    ("file", path), ("reason", aside.reason), ("moved_to", aside.path),
                    ("action", "starting fresh; every meter is configured again"),
                ]))
            }
            if opened.foundVersion == 0 {
                events.append(ConfigEvent(.info, "state_new", [("file", path), ("schema_version", String(Self.migrations.count))]))
            } else if opened.foundVersion < Self.migrations.count {
                events.append(ConfigEvent(.info, "state_migrated", [
                    ("file", path), ("from", String(opened.foundVersion)), ("to", String(Self.migrations.count)),
                ]))
            }
            let database = opened.database
            let statements: Statements
            do throws(SQLiteError) {
                // SQLite's default page cache (2 MB) was a sixth of the heap at
                // 10,000 meters (massif); a page it misses is read again from
                // the system's file cache.
                try database.execute("PRAGMA cache_size = -\(Self.pageCacheKiB)")
                statements = try Statements(database)
            } catch {
                throw StateStoreError("\(path): \(error.message)")
            }
            let imported = Self.importLegacyFile(database, statements, path: path, legacyPath: legacyPath,
                                                 legacyTemporaryPath: legacyTemporaryPath, now: now)
            events += imported.events
            let records: [String: MeterRecord], skipped: [(String, String)]
            do throws(SQLiteError) {
                (records, skipped) = try Self.readAll(database)
            } catch {
                throw StateStoreError("cannot read \(path): \(error.message)")
            }
            open = Connection.Open(database: database, statements: statements)
            return (records, skipped, events, problem ?? imported.problem)
        }
        self.problem = problem
        events += found
        for (id, why) in skipped {
            events.append(ConfigEvent(.warning, "state_meter_skipped", [("meter", id), ("reason", why)]))
        }
        events.append(ConfigEvent(.info, "state_loaded", [("file", path), ("meters", String(records.count))]))
        return (records, events)
    }

    /// Hands changed records over to the writer thread: never waits for the disk.
    public func submit(_ changes: [(key: String, change: MeterRecordChange)]) {
        writer.submit(changes)
    }

    /// Waits until every change handed over is in the database, at most
    /// `seconds` (shutdown); false when some could not be written in time.
    public func flush(seconds: Double) -> Bool { writer.flush(seconds: seconds) }

    /// Transactions the writer thread committed (tests).
    var batchesWritten: Int { writer.batchesWritten }

    /// Meters handed over and not yet written.
    public var backlog: Int { writer.backlog }

    /// Writes that failed since the last call, each as a sentence (they are tried again).
    public func takeFailures() -> [String] { writer.takeFailures() }

    /// Writes `changes` at once, on the caller's thread, in one transaction
    /// (the writer thread's batches; tests).
    public func write(_ changes: [(key: String, change: MeterRecordChange)]) throws(StateStoreError) {
        try connection.write(changes, path: path)
    }

    /// Reads a state database's records without writing any: `sqlite3`'s
    /// view, for a person or a test while the service runs. Opened for
    /// writing (as `sqlite3` opens it) so that it can recover the WAL index
    /// of a service that was killed.
    public static func readRecords(path: String) throws(StateStoreError) -> [String: MeterRecord] {
        do {
            let database = try SQLiteDatabase(path: path, create: false)
            database.setBusyTimeout(milliseconds: 1_000)
            return try readAll(database).records
        } catch {
            throw StateStoreError("\(path): \(error.message)")
        }
    }

    // MARK: Rows

    /// The open database: the loop's at start-up, then the writer thread's.
    private final class Connection: Sendable {
        struct Open {
            let database: SQLiteDatabase
            let statements: Statements
        }

        let open = Mutex<Open?>(nil)

        /// The rows of `changes`, in one transaction.
        func write(_ changes: [(key: String, change: MeterRecordChange)], path: String) throws(StateStoreError) {
            do throws(SQLiteError) {
                try open.withLock { (open: inout Open?) throws(SQLiteError) in
                    guard let open else { throw SQLiteError(kind: .other, code: 1, message: "not open") }
                    try open.database.transaction { () throws(SQLiteError) in
                        for (id, change) in changes { try ConfigStateStore.write(id, change, open.statements) }
                    }
                }
            } catch {
                throw StateStoreError("cannot write \(path): \(error.message)")
            }
        }
    }

    /// The prepared writes, reused by every batch.
    private final class Statements {
        let upsertMeter: SQLiteStatement
        let upsertCommand: SQLiteStatement
        let deleteMeter: SQLiteStatement
        let deleteCommand: SQLiteStatement
        let deleteCommands: SQLiteStatement

        init(_ database: SQLiteDatabase) throws(SQLiteError) {
            upsertMeter = try database.prepare("""
                INSERT OR REPLACE INTO meters (id, digest, settings, acknowledged_date, acknowledged_at_ms, last_clock_sent_at_ms, last_error)
                VALUES (?, ?, ?, ?, ?, ?, ?)
                """)
            upsertCommand = try database.prepare("""
                INSERT OR REPLACE INTO commands (meter, name, result, value, date, at_ms, oprid, msg) VALUES (?, ?, ?, ?, ?, ?, ?, ?)
                """)
            deleteMeter = try database.prepare("DELETE FROM meters WHERE id = ?")
            deleteCommand = try database.prepare("DELETE FROM commands WHERE meter = ? AND name = ?")
            deleteCommands = try database.prepare("DELETE FROM commands WHERE meter = ?")
        }
    }

    /// The rows of meter `id` that `change` names.
    private static func write(_ id: String, _ change: MeterRecordChange, _ s: Statements) throws(SQLiteError) {
        guard let new = change.record else {
            try s.deleteCommands.run([.text(id)])
            try s.deleteMeter.run([.text(id)])
            return
        }
        if change.meterRow {
            try s.upsertMeter.run([
                .text(id), text(new.digest), new.settings.isEmpty ? .null : .text(settingsText(new.settings)),
                text(new.acknowledgedDate), integer(new.acknowledgedAt), integer(new.lastClockSentAt), text(new.lastError),
            ])
        }
        for name in change.commands.sorted() {
            if let c = new.commands[name] {
                try s.upsertCommand.run([
                    .text(id), .text(name), .text(c.outcome.rawValue), text(c.value), .text(c.date), .integer(c.at),
                    text(c.operationID), text(c.message),
                ])
            } else {
                try s.deleteCommand.run([.text(id), .text(name)])
            }
        }
    }

    private static func text(_ value: String?) -> SQLiteValue { value.map { .text($0) } ?? .null }
    private static func integer(_ value: Int64?) -> SQLiteValue { value.map { .integer($0) } ?? .null }

    /// `{"name":value,…}`, sorted by name: readable with `sqlite3` and its JSON functions.
    static func settingsText(_ settings: [String: Int]) -> String {
        let object = JSONObject(settings.keys.sorted().map { ($0, JSONValue.integer(Int64(settings[$0]!))) })
        return String(decoding: JSONValue.object(object).serialized(), as: UTF8.self)
    }

    /// Every record; a meter whose rows make no sense is skipped and named.
    private static func readAll(_ database: SQLiteDatabase) throws(SQLiteError) -> (records: [String: MeterRecord], skipped: [(String, String)]) {
        var records: [String: MeterRecord] = [:]
        var bad: [String: String] = [:]
        let meters = try database.prepare("""
            SELECT id, digest, settings, acknowledged_date, acknowledged_at_ms, last_clock_sent_at_ms, last_error FROM meters
            """)
        while try meters.step() {
            guard let id = meters.text(0) else { continue }
            var r = MeterRecord()
            r.digest = meters.text(1)
            if let settings = meters.text(2) {
                guard let object = (try? JSONValue.parse(Array(settings.utf8)))?.objectValue else {
                    bad[id] = "'settings' is not a JSON object"
                    continue
                }
                for (k, v) in object {
                    guard let i = v.intValue else { bad[id] = "setting '\(k)' is not an integer"; break }
                    r.settings[k] = Int(i)
                }
            }
            r.acknowledgedDate = meters.text(3)
            r.acknowledgedAt = meters.integer(4)
            r.lastClockSentAt = meters.integer(5)
            r.lastError = meters.text(6)
            records[id] = r
        }
        let row = try database.prepare("SELECT meter, name, result, value, date, at_ms, oprid, msg FROM commands")
        while try row.step() {
            guard let id = row.text(0), let name = row.text(1) else { continue }
            guard let outcome = row.text(2).flatMap(CommandResult.Outcome.init(rawValue:)) else {
                bad[id] = "command '\(name)' has no valid 'result'"
                continue
            }
            guard let date = row.text(4), let at = row.integer(5) else {
                bad[id] = "command '\(name)' needs 'date' and 'at_ms'"
                continue
            }
            // Commands of a meter without a meter row: the meter row is implied.
            records[id, default: MeterRecord()].commands[name] = CommandResult(
                outcome: outcome, value: row.text(3), date: date, at: at, operationID: row.text(6), message: row.text(7))
        }
        for id in bad.keys { records[id] = nil }
        return (records, bad.sorted { $0.key < $1.key }.map { ($0.key, $0.value) })
    }

    // MARK: The JSON state file of earlier releases

    /// Imports `config-sender-state.json` when it is there: its records
    /// replace the database's in one transaction, then it is renamed
    /// `….imported`. A crash before the rename imports the same file again.
    private static func importLegacyFile(_ database: SQLiteDatabase, _ statements: Statements, path: String, legacyPath: String,
                                         legacyTemporaryPath: String, now: Instant) -> (events: [ConfigEvent], problem: String?) {
        var problem: String?
        var events: [ConfigEvent] = []
        if FileSystem.exists(legacyTemporaryPath) {
            _ = unlink(legacyTemporaryPath)
            events.append(ConfigEvent(.warning, "state_temp_removed", [
                ("file", legacyTemporaryPath), ("reason", "left by an interrupted write of the JSON state file; the last complete one is used"),
            ]))
        }
        guard FileSystem.exists(legacyPath) else { return (events, nil) }
        do throws(StateStoreError) {
            var failure: Int32 = 0
            guard let data = FileSystem.read(legacyPath, failure: &failure) else {
                throw StateStoreError("cannot read the file: \(String(cString: strerror(failure)))")
            }
            let (records, skipped) = try LegacyStateFile.decode(data)
            for (id, why) in skipped {
                events.append(ConfigEvent(.warning, "state_meter_skipped", [("meter", id), ("reason", why)]))
            }
            do {
                try database.transaction { () throws(SQLiteError) in
                    try database.execute("DELETE FROM meters; DELETE FROM commands")
                    for (id, record) in records { try Self.write(id, MeterRecordChange(from: nil, to: record), statements) }
                }
            } catch {
                events.append(ConfigEvent(.error, "state_import_failed", [("file", legacyPath), ("error", error.message)]))
                return (events, nil)
            }
            let imported = legacyPath + ".imported"
            let renamed = rename(legacyPath, imported) == 0
            events.append(ConfigEvent(renamed ? .info : .warning, "state_imported", [
                ("file", legacyPath), ("meters", String(records.count)), ("into", path),
                ("renamed_to", renamed ? imported : nil),
                ("error", renamed ? nil : "cannot rename: \(String(cString: strerror(errno))); it is imported again at the next start"),
            ]))
        } catch {
            let aside = legacyPath + ".corrupt-\(now.epochMillis)"
            let moved = rename(legacyPath, aside) == 0
            problem = "the JSON state file of an earlier release was damaged (\(error.message)); moved to \(aside)"
            events.append(ConfigEvent(.warning, "state_corrupt", [
                ("file", legacyPath), ("reason", error.message), ("moved_to", moved ? aside : nil),
                ("action", "not imported; every meter is configured again"),
            ]))
            if !moved { _ = unlink(legacyPath) }
        }
        return (events, problem)
    }
}
