#if canImport(Glibc)
import Glibc
#endif
import JSON
import RuleEngine
import SQLite

/// The guarded counters' last forwarded values (`Engine.counters`) in the
/// proxy's state directory, so that a restart checks the next reading against
/// what was forwarded before it: `counters.db` (SQLite, schema in
/// docs/state-databases.md), one row per meter and field.
///
/// `save` writes only the rows that changed since the last save, at most
/// `maxRowsPerBatch` in one transaction; the rest waits for the next call.
/// WAL with `synchronous = NORMAL`: a commit does not wait for the disk, so
/// a power cut may lose the last seconds of commits (never the database's
/// consistency), which brings back an older value: that only lets one more
/// genuine reading through the check, never a glitch that went up.
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

    struct Key: Hashable {
        var device: String
        var field: String
    }

    let path: String
    let legacyPath: String
    /// The most rows one `save` writes (one transaction).
    var maxRowsPerBatch = 5_000

    private var database: SQLiteDatabase?
    private var upsert: SQLiteStatement?
    private var delete: SQLiteStatement?
    /// What the database holds, as of the last committed save.
    private var written: [Key: CounterSnapshot] = [:]

    init(directory: String) {
        let prefix = directory.hasSuffix("/") ? directory : directory + "/"
        path = prefix + CounterStore.fileName
        legacyPath = prefix + CounterStore.legacyFileName
    }

    /// Rows inserted, updated or deleted since the store was opened (tests, benchmarks).
    var rowsWritten: Int64 { database?.totalChanges ?? 0 }

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
        var loaded = Loaded()
        database = nil
        upsert = nil
        delete = nil
        let opened = try StateDatabase.open(path: path, synchronous: "NORMAL", migrations: Self.migrations, now: now)
        loaded.movedAside = opened.movedAside
        let database = opened.database
        do {
            upsert = try database.prepare("INSERT OR REPLACE INTO counters (device, field, value, time) VALUES (?, ?, ?, ?)")
            delete = try database.prepare("DELETE FROM counters WHERE device = ? AND field = ?")
        } catch {
            throw StateStoreError("\(path): \(error.message)")
        }
        self.database = database
        written = [:]
        if FileSystem.exists(legacyPath) { importLegacyFile(into: &loaded) }
        do {
            written = try Self.readAll(database)
        } catch {
            throw StateStoreError("cannot read \(path): \(error.message)")
        }
        loaded.counters = written.values.sorted { ($0.device, $0.field) < ($1.device, $1.field) }
        return loaded
    }

    /// Writes the rows that differ from what the database holds: at most
    /// `maxRowsPerBatch`, in one transaction. Returns true when the database
    /// now holds `counters`, false when more is left for the next call.
    @discardableResult
    func save(_ counters: [CounterSnapshot]) throws(StateStoreError) -> Bool {
        guard let database, let upsert, let delete else { throw StateStoreError("\(path) is not open") }
        var current: [Key: CounterSnapshot] = [:]
        current.reserveCapacity(counters.count)
        for c in counters { current[Key(device: c.device, field: c.field)] = c }
        var batch: [Key] = []
        var complete = true
        for (key, c) in current where written[key] != c {
            guard batch.count < maxRowsPerBatch else { complete = false; break }
            batch.append(key)
        }
        if complete {
            for key in written.keys where current[key] == nil {
                guard batch.count < maxRowsPerBatch else { complete = false; break }
                batch.append(key)
            }
        }
        guard !batch.isEmpty else { return complete }
        do {
            try database.transaction { () throws(SQLiteError) in
                for key in batch {
                    if let c = current[key] {
                        try upsert.run([.text(c.device), .text(c.field), .real(c.value), .integer(c.time)])
                    } else {
                        try delete.run([.text(key.device), .text(key.field)])
                    }
                }
            }
        } catch {
            throw StateStoreError("cannot write \(path): \(error.message)")
        }
        for key in batch { written[key] = current[key] }
        return complete
    }

    /// A counters database's rows by meter and field, read beside a running proxy (`show`).
    static func readCounters(path: String) throws(StateStoreError) -> [CounterSnapshot] {
        do {
            let database = try SQLiteDatabase(path: path, create: false)
            database.setBusyTimeout(milliseconds: 1_000)
            return try readAll(database).values.sorted { ($0.device, $0.field) < ($1.device, $1.field) }
        } catch {
            throw StateStoreError("\(path): \(error.message)")
        }
    }

    private static func readAll(_ database: SQLiteDatabase) throws(SQLiteError) -> [Key: CounterSnapshot] {
        let select = try database.prepare("SELECT device, field, value, time FROM counters")
        var rows: [Key: CounterSnapshot] = [:]
        while try select.step() {
            guard let device = select.text(0), let field = select.text(1), let value = select.real(2),
                  let time = select.integer(3) else { continue }
            rows[Key(device: device, field: field)] = CounterSnapshot(device: device, field: field, value: value, time: time)
        }
        return rows
    }

    /// `counters.json` (`{"version":1,"counters":[{"device","field","value","time"}]}`):
    /// its counters replace the database's in one transaction, then it is
    /// renamed `….imported`. A file that does not parse is renamed
    /// `….corrupt-<millis>` and reported; nothing is imported from it.
    private func importLegacyFile(into loaded: inout Loaded) {
        guard let database, let upsert else { return }
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
            try database.transaction { () throws(SQLiteError) in
                try database.execute("DELETE FROM counters")
                for c in counters { try upsert.run([.text(c.device), .text(c.field), .real(c.value), .integer(c.time)]) }
            }
        } catch {
            loaded.problem = "cannot import \(legacyPath): \(error.message)"
            return
        }
        let imported = legacyPath + ".imported"
        loaded.imported = (counters.count, rename(legacyPath, imported) == 0 ? imported : nil)
    }
}
