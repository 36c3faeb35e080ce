internal import CSQLite

/// Why SQLite refused: its result code, sorted into what a caller acts on, and its message.
public struct SQLiteError: Error, Sendable, CustomStringConvertible {
    public enum Kind: Sendable, Equatable {
        /// The file is damaged (`SQLITE_CORRUPT`) or is not a database at all (`SQLITE_NOTADB`).
        case corrupt
        /// Another connection holds the lock (`SQLITE_BUSY`, `SQLITE_LOCKED`).
        case busy
        /// The disk or the quota is full (`SQLITE_FULL`).
        case full
        /// The operating system refused a read, a write or an fsync (`SQLITE_IOERR`).
        case io
        /// The file cannot be opened or created (`SQLITE_CANTOPEN`, `SQLITE_PERM`, `SQLITE_READONLY`).
        case cannotOpen
        /// A constraint failed (`SQLITE_CONSTRAINT`).
        case constraint
        /// Anything else (a syntax error, a misuse): a programming error.
        case other
    }

    public var kind: Kind
    /// SQLite's extended result code.
    public var code: Int32
    public var message: String

    public init(kind: Kind, code: Int32, message: String) {
        self.kind = kind
        self.code = code
        self.message = message
    }

    public var isCorruption: Bool { kind == .corrupt }
    public var description: String { message }

    /// The one place an SQLite result code becomes an `SQLiteError`; `handle`
    /// (when there is one) supplies the message of the call that failed.
    init(code: Int32, handle: OpaquePointer?, context: String? = nil) {
        let kind: Kind = switch code & 0xFF {
        case SQLITE_CORRUPT, SQLITE_NOTADB: .corrupt
        case SQLITE_BUSY, SQLITE_LOCKED: .busy
        case SQLITE_FULL: .full
        case SQLITE_IOERR: .io
        case SQLITE_CANTOPEN, SQLITE_PERM, SQLITE_READONLY: .cannotOpen
        case SQLITE_CONSTRAINT: .constraint
        default: .other
        }
        var text = handle.flatMap { sqlite3_errmsg($0) }.map { String(cString: $0) } ?? String(cString: sqlite3_errstr(code))
        if let context { text = "\(context): \(text)" }
        self.init(kind: kind, code: code, message: text)
    }
}
