#if canImport(Glibc)
import Glibc
#endif
import RuleEngine
import SQLite

/// Opens a service's state database (config-sender's meter records, the
/// proxy's guarded counters) the same way for both: WAL, the service's
/// `synchronous`, a quick integrity check, the schema brought to the
/// current `PRAGMA user_version`.
///
/// A file SQLite finds damaged (or that is not a database at all) is moved
/// aside with its `-wal` and `-shm` files (`<file>.corrupt-<millis>`) and a
/// new one is created: the caller reports it (a log line and its status) and
/// starts from what it has. A file whose schema is newer than this program
/// knows is left alone and the service does not start: running an older
/// release on it would lose what the newer one wrote.
struct StateDatabase {
    let database: SQLiteDatabase
    /// The schema version the file had before this start (0: created now).
    let foundVersion: Int64
    /// Where a damaged file went, and why it was judged damaged.
    let movedAside: (path: String, reason: String)?

    /// `migrations[i]` brings the schema from version `i` to `i + 1`; the
    /// current version is `migrations.count`.
    static func open(path: String, synchronous: String, migrations: [String], now: Instant) throws(StateStoreError) -> StateDatabase {
        var movedAside: (path: String, reason: String)?
        for attempt in 0..<2 {
            do throws(SQLiteError) {
                let (database, version) = try openAndMigrate(path: path, synchronous: synchronous, migrations: migrations)
                return StateDatabase(database: database, foundVersion: version, movedAside: movedAside)
            } catch where error.isCorruption && attempt == 0 {
                let aside = "\(path).corrupt-\(now.epochMillis)"
                guard rename(path, aside) == 0 else {
                    throw StateStoreError("\(path) is damaged (\(error.message)) and cannot be moved aside: \(String(cString: strerror(errno)))")
                }
                for suffix in ["-wal", "-shm"] where FileSystem.exists(path + suffix) {
                    _ = rename(path + suffix, aside + suffix)
                }
                movedAside = (aside, error.message)
            } catch {
                throw StateStoreError("\(path): \(error.message)")
            }
        }
        throw StateStoreError("\(path) is still damaged after the damaged file was moved aside")
    }

    private static func openAndMigrate(path: String, synchronous: String,
                                       migrations: [String]) throws(SQLiteError) -> (SQLiteDatabase, Int64) {
        let database = try SQLiteDatabase(path: path)
        // An operator's `sqlite3` may hold a read lock for a moment.
        database.setBusyTimeout(milliseconds: 200)
        // Checked before anything is written: a damaged file is moved aside as it was found.
        let check = try database.text("PRAGMA quick_check") ?? "no answer"
        guard check == "ok" else { throw SQLiteError(kind: .corrupt, code: 11, message: "quick_check: \(check)") }
        _ = try database.text("PRAGMA journal_mode = WAL")
        try database.execute("PRAGMA synchronous = \(synchronous)")
        let version = try database.integer("PRAGMA user_version") ?? 0
        guard version <= Int64(migrations.count) else {
            throw SQLiteError(kind: .other, code: 1, message:
                "schema version \(version) is newer than this program's (\(migrations.count)): written by a newer release; "
                + "upgrade again, or move the file away to start afresh")
        }
        if version < Int64(migrations.count) {
            try database.transaction { () throws(SQLiteError) in
                for migration in migrations[Int(version)...] { try database.execute(migration) }
                try database.execute("PRAGMA user_version = \(migrations.count)")
            }
        }
        return (database, version)
    }
}

/// A state store problem, as one sentence.
public struct StateStoreError: Error, Sendable, CustomStringConvertible {
    public var message: String
    public init(_ message: String) { self.message = message }
    init(errno code: Int32, _ what: String) {
        self.message = "\(what): \(String(cString: strerror(code)))"
    }
    public var description: String { message }
}
