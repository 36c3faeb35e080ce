import Glibc

/// A failed system call of the journal: the errno, what the journal was doing and on which path.
///
/// Bad data on disk never produces this error (recovery cuts it and reports it in
/// `JournalRecovery`); only the operating system refusing an operation does.
public struct JournalError: Error, CustomStringConvertible {
    /// The `errno` value the system call left.
    public var errno: Int32
    /// What the journal was doing, e.g. "open segment" or "write segment".
    public var operation: String
    /// The file or directory concerned.
    public var path: String

    /// An error with every field given.
    public init(errno: Int32, operation: String, path: String) {
        self.errno = errno
        self.operation = operation
        self.path = path
    }

    /// The error for the system call that just failed: reads the thread's `errno`.
    ///
    /// Every failing system call of the target goes through here, so that each
    /// error names its path and the message always has the same shape.
    static func lastSystemError(_ operation: String, path: String) -> JournalError {
        JournalError(errno: Glibc.errno, operation: operation, path: path)
    }

    /// `journal: <operation> <path>: <strerror> (errno N)`.
    public var description: String {
        "journal: \(operation) \(path): \(String(cString: strerror(errno))) (errno \(errno))"
    }
}
