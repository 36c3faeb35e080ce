#if canImport(Glibc)
import Glibc
#endif
import JSON
import RuleEngine
import SQLite
import Synchronization

/// The guarded counters' last forwarded values (`Engine.counters`) in the
/// proxy's state directory, so that a restart checks the next reading against
/// what was forwarded before it: `counters.db` (SQLite, schema in
/// docs/state-databases.md), one row per meter and field.
///
/// `submit` hands over the rows that changed (the engine's
/// `takeCounterChanges`: no copy of every counter is kept here to find
/// them), by value, to a writer thread (`StateWriter`) that writes them in
/// transactions of at most `batchSize` rows: the event loop never waits for
/// the disk, only shutdown does (`flush`). WAL with `synchronous = NORMAL`:
/// a commit does not wait for the disk, so a power cut may lose the last
/// seconds of commits (never the database's consistency), which brings back
/// an older value: that only lets one more genuine reading through the
/// check, never a glitch that went up.
///
/// The first start after an upgrade imports `counters.json` of earlier
/// releases once and renames it (`counters.json.imported`). A damaged
/// database is moved aside (`counters.db.corrupt-<millis>`) and reported
/// (`movedAside`: the log and the status); the proxy starts without saved
/// counters.
final class CounterStore {
    static let fileName = "counters.db"
    static let legacyFileName = "counters.json"
    /// `migrations[i]` brings the schema from `PRAGMA user_version` i to i + 1.
    static let migrations = [
        """
        CREATE TABLE counters (
            device TEXT NOT NULL,
            field TEXT NOT NULL,
            value REAL NOT NULL,
            time INTEGER NOT NULL,
            PRIMARY KEY (device, field)
        ) WITHOUT ROWID;
        """,
    ]

    typealias Key = CounterChanges.Key

    /// A row's value and time (nil in a change: the row goes).
    struct Stamp: Equatable, Sendable {
        var value: Double
        var time: Int64
    }

    let path: String
    let legacyPath: String

    private let connection = Connection()
    private let writer: StateWriter<Key, Stamp?>

    /// `batchSize`: the most rows one transaction writes. `writeDelaySeconds`
    /// makes every transaction that much slower (tests: a slow disk).
    init(directory: String, batchSize: Int = 5_000, writeDelaySeconds: Double = 0) {
        let prefix = directory.hasSuffix("/") ? directory : directory + "/"
        path = prefix + CounterStore.fileName
        legacyPath = prefix + CounterStore.legacyFileName
        writer = StateWriter(name: "counter-state", batch: batchSize, merge: { $0 = $1 }) { [connection, path] changes throws(StateStoreError) in
            if writeDelaySeconds > 0 { usleep(UInt32(writeDelaySeconds * 1_000_000)) }
            try connection.write(changes, path: path)
        }
    }

    deinit { writer.stop() }

    /// Rows inserted, updated or deleted since the store was opened (tests, benchmarks).
    var rowsWritten: Int64 { connection.open.withLock { $0?.database.totalChanges ?? 0 } }

    /// What `load` found, for the log and the status.
    struct Loaded {
        var counters: [CounterSnapshot] = []
        /// Where a damaged database went, and why.
        var movedAside: (path: String, reason: String)?
        /// `counters.json` imported: how many counters, and where it was renamed to.
        var imported: (count: Int, renamedTo: String?)?
        /// Something that was not imported or read, as a sentence.
        var problem: String?
    }

    /// Opens the database (creating, migrating, importing or moving it aside
    /// as needed) and reads the saved counters. Throws when the database
    /// cannot be opened at all.
    func load(now: Instant) throws(StateStoreError) -> Loaded {
        writer.stop()
        let path = path, legacyPath = legacyPath
        // Opened where the writer thread finds it: in the connection's lock.
        let (loaded, rows) = try connection.open.withLock {
            (open: inout Connection.Open?) throws(StateStoreError) -> (Loaded, [Key: Stamp]) in
            open = nil
            var loaded = Loaded()
            let opened = try StateDatabase.open(path: path, synchronous: "NORMAL", migrations: Self.migrations, now: now)
            loaded.movedAside = opened.movedAside
            let database = opened.database
            let statements: Connection.Open
            do throws(SQLiteError) {
                // A row per meter and guarded field, written by key: 256 KiB of
                // page cache (SQLite's default is 2 MiB) serve the writes, and the
                // rest was resident memory of the writer thread at 10,000 meters.
                try database.execute("PRAGMA cache_size = -256")
                statements = Connection.Open(
                    database: database,
                    upsert: try database.prepare("INSERT OR REPLACE INTO counters (device, field, value, time) VALUES (?, ?, ?, ?)"),
                    delete: try database.prepare("DELETE FROM counters WHERE device = ? AND field = ?"))
            } catch {
                throw StateStoreError("\(path): \(error.message)")
            }
            if FileSystem.exists(legacyPath) { Self.importLegacyFile(legacyPath, into: statements, &loaded) }
            let rows: [Key: Stamp]
            do throws(SQLiteError) {
                rows = try Self.readAll(database)
            } catch {
                throw StateStoreError("cannot read \(path): \(error.message)")
            }
            open = statements
            return (loaded, rows)
        }
        var result = loaded
        result.counters = rows.map { CounterSnapshot(device: $0.key.device, field: $0.key.field, value: $0.value.value, time: $0.value.time) }
            .sorted { ($0.device, $0.field) < ($1.device, $1.field) }
        return result
    }

    /// Hands `changes` to the writer thread: the forgotten rows are
    /// deleted, then the changed ones written. Never waits for the disk.
    /// Returns how many rows it hands over.
    @discardableResult
    func submit(_ changes: CounterChanges) -> Int {
        // Read lazily into the writer's pending rows: a wave of 10,000
        // changed meters is not copied once more on the way.
        writer.submit(changes.forgotten.lazy.map { (key: $0, change: Stamp?.none) })
        writer.submit(changes.changed.lazy.map { c -> (key: Key, change: Stamp?) in
            (Key(device: c.device, field: c.field), Stamp(value: c.value, time: c.time))
        })
        return changes.forgotten.count + changes.changed.count
    }

    /// Waits until every row handed over is in the database, at most
    /// `seconds` (shutdown); false when some could not be written in time.
    func flush(seconds: Double) -> Bool { writer.flush(seconds: seconds) }

    /// Rows handed over and not yet written.
    var backlog: Int { writer.backlog }

    /// Transactions the writer thread committed (tests).
    var batchesWritten: Int { writer.batchesWritten }

    /// Writes that failed since the last call, each as a sentence (they are tried again).
    func takeFailures() -> [String] { writer.takeFailures() }

    /// The open database: the loop's at start-up, then the writer thread's.
    private final class Connection: Sendable {
        struct Open {
            let database: SQLiteDatabase
            let upsert: SQLiteStatement
            let delete: SQLiteStatement
        }

        let open = Mutex<Open?>(nil)

        /// The rows of `changes`, in one transaction.
        func write(_ changes: [(key: Key, change: Stamp?)], path: String) throws(StateStoreError) {
            do throws(SQLiteError) {
                try open.withLock { (open: inout Open?) throws(SQLiteError) in
                    guard let open else { throw SQLiteError(kind: .other, code: 1, message: "not open") }
                    try open.database.transaction { () throws(SQLiteError) in
                        for (key, stamp) in changes {
                            if let stamp {
                                try open.upsert.run([.text(key.device), .text(key.field), .real(stamp.value), .integer(stamp.time)])
                            } else {
                                try open.delete.run([.text(key.device), .text(key.field)])
                            }
                        }
                    }
                }
            } catch {
                throw StateStoreError("cannot write \(path): \(error.message)")
            }
        }
    }

    /// A counters database's rows by meter and field, read beside a running proxy (`show`).
    static func readCounters(path: String) throws(StateStoreError) -> [CounterSnapshot] {
        do {
            let database = try SQLiteDatabase(path: path, create: false)
            database.setBusyTimeout(milliseconds: 1_000)
            return try readAll(database).map { CounterSnapshot(device: $0.key.device, field: $0.key.field, value: $0.value.value, time: $0.value.time) }
                .sorted { ($0.device, $0.field) < ($1.device, $1.field) }
        } catch {
            throw StateStoreError("\(path): \(error.message)")
        }
    }

    private static func readAll(_ database: SQLiteDatabase) throws(SQLiteError) -> [Key: Stamp] {
        let select = try database.prepare("SELECT device, field, value, time FROM counters")
        var rows: [Key: Stamp] = [:]
        while try select.step() {
            guard let device = select.text(0), let field = select.text(1), let value = select.real(2),
                  let time = select.integer(3) else { continue }
            rows[Key(device: device, field: field)] = Stamp(value: value, time: time)
        }
        return rows
    }

    /// `counters.json` (`{"version":1,"counters":[{"device","field","value","time"}]}`):
    /// its counters replace the database's in one transaction, then it is
    /// renamed `….imported`. A file that does not parse is renamed
    /// `….corrupt-<millis>` and reported; nothing is imported from it.
    private static func importLegacyFile(_ legacyPath: String, into open: Connection.Open, _ loaded: inout Loaded) {
        guard let bytes = FileSystem.read(legacyPath), let document = try? JSONValue.parse(bytes),
              case .array(let items)? = document["counters"] else {
            let aside = legacyPath + ".corrupt-\(Instant.now().epochMillis)"
            let moved = rename(legacyPath, aside) == 0
            loaded.problem = "\(legacyPath) is not a counters file; \(moved ? "moved to \(aside)" : "left in place"), not imported"
            return
        }
        var counters: [CounterSnapshot] = []
        for item in items {
            guard let device = item["device"]?.stringValue, let field = item["field"]?.stringValue,
                  let value = item["value"]?.doubleValue, let time = item["time"]?.intValue else { continue }
            counters.append(CounterSnapshot(device: device, field: field, value: value, time: time))
        }
        do {
            try open.database.transaction { () throws(SQLiteError) in
                try open.database.execute("DELETE FROM counters")
                for c in counters { try open.upsert.run([.text(c.device), .text(c.field), .real(c.value), .integer(c.time)]) }
            }
        } catch {
            loaded.problem = "cannot import \(legacyPath): \(error.message)"
            return
        }
        let imported = legacyPath + ".imported"
        loaded.imported = (counters.count, rename(legacyPath, imported) == 0 ? imported : nil)
    }
}
