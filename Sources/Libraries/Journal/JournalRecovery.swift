/// What `Journal.init` found on disk and what it had to cut, for the start-up log.
public struct JournalRecovery: Sendable, Equatable {
    /// Segment files kept after recovery.
    public var segments: Int = 0
    /// Unacknowledged records found; they are handed out again by `next()`.
    public var records: Int = 0
    /// Bytes cut off the end of the last segment because they did not form a complete record.
    public var tornTailBytes: Int = 0
    /// Records lost to corruption (a checksum, length or sequence that is wrong): the
    /// sequences skipped to the next valid record, or to the next segment; at least one
    /// for each place where a complete but invalid record was found. Records after a bad
    /// one are kept (see `Journal`'s recovery).
    public var corruptRecords: Int = 0
    /// All bytes cut, torn tail and corruption together.
    public var droppedBytes: Int = 0
    /// One human-readable line per problem, meant for the log.
    public var notes: [String] = []

    /// An empty report: nothing found, nothing cut.
    public init() {}
}
