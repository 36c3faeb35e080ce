internal import CSQLite

/// One connection to one database file (`sqlite3 *`), closed when released.
///
/// Used from one thread at a time (the connection is opened without SQLite's
/// own mutex). Statements keep their connection alive.
public final class SQLiteDatabase {
    let handle: OpaquePointer
    public let path: String

    /// Opens for reading and writing (and with `create`, creates) the file at `path`.
    public init(path: String, create: Bool = true) throws(SQLiteError) {
        var db: OpaquePointer?
        var flags = SQLITE_OPEN_NOMUTEX | SQLITE_OPEN_READWRITE
        if create { flags |= SQLITE_OPEN_CREATE }
        let rc = sqlite3_open_v2(path, &db, flags, nil)
        guard rc == SQLITE_OK, let db else {
            let error = SQLiteError(code: rc, handle: db, context: "open \(path)")
            sqlite3_close_v2(db)
            throw error
        }
        sqlite3_extended_result_codes(db, 1)
        handle = db
        self.path = path
    }

    deinit { sqlite3_close_v2(handle) }

    /// Runs one or more statements that return no rows of interest (DDL, pragmas, `BEGIN`).
    public func execute(_ sql: String) throws(SQLiteError) {
        try check(sqlite3_exec(handle, sql, nil, nil, nil))
    }

    public func prepare(_ sql: String) throws(SQLiteError) -> SQLiteStatement {
        try SQLiteStatement(database: self, sql: sql)
    }

    /// The first column of the first row of `sql`, as an integer (nil: no row, or NULL).
    public func integer(_ sql: String) throws(SQLiteError) -> Int64? {
        let statement = try prepare(sql)
        return try statement.step() ? statement.integer(0) : nil
    }

    /// The first column of the first row of `sql`, as text (nil: no row, or NULL).
    public func text(_ sql: String) throws(SQLiteError) -> String? {
        let statement = try prepare(sql)
        return try statement.step() ? statement.text(0) : nil
    }

    /// Rows inserted, updated or deleted through this connection since it was opened.
    public var totalChanges: Int64 { sqlite3_total_changes64(handle) }

    /// Waits at most this long for another connection's lock (a reader such as `sqlite3`).
    public func setBusyTimeout(milliseconds: Int32) {
        sqlite3_busy_timeout(handle, milliseconds)
    }

    /// Runs `body` in one transaction: committed when it returns, rolled back when it throws.
    public func transaction<T>(_ body: () throws(SQLiteError) -> T) throws(SQLiteError) -> T {
        try execute("BEGIN IMMEDIATE")
        do {
            let result = try body()
            try execute("COMMIT")
            return result
        } catch {
            _ = sqlite3_exec(handle, "ROLLBACK", nil, nil, nil)
            throw error
        }
    }

    func check(_ rc: Int32, _ context: String? = nil) throws(SQLiteError) {
        guard rc == SQLITE_OK else { throw SQLiteError(code: rc, handle: handle, context: context) }
    }
}
