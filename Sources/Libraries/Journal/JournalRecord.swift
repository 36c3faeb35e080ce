/// One outgoing message as the journal stores and hands it back.
public struct JournalRecord: Sendable, Equatable {
    /// Assigned by `Journal.append`: strictly increasing and never reused, also across restarts.
    public var sequence: UInt64
    /// Wall-clock time of the append in milliseconds since the epoch, as passed in by the caller.
    public var appendedAtMilliseconds: Int64
    /// Caller-defined message kind (data, announce, status …); the journal does not interpret it.
    public var kind: UInt8
    /// The MQTT retain flag to publish with.
    public var retain: Bool
    /// The MQTT topic bytes.
    public var topic: [UInt8]
    /// The MQTT payload bytes.
    public var payload: [UInt8]

    /// A record with every field given.
    public init(sequence: UInt64, appendedAtMilliseconds: Int64, kind: UInt8, retain: Bool,
                topic: [UInt8], payload: [UInt8]) {
        self.sequence = sequence
        self.appendedAtMilliseconds = appendedAtMilliseconds
        self.kind = kind
        self.retain = retain
        self.topic = topic
        self.payload = payload
    }
}

/// A record handed out by `Journal.nextBorrowed()`, not copied: its topic and
/// payload point into the journal's read buffer and stay valid until the next
/// call that reads the journal (`next`, `nextBorrowed`, `rewind`, `close`).
public struct BorrowedJournalRecord {
    public var sequence: UInt64
    public var appendedAtMilliseconds: Int64
    public var kind: UInt8
    public var retain: Bool
    public var topic: UnsafeRawBufferPointer
    public var payload: UnsafeRawBufferPointer

    /// An owned copy, for keeping the record beyond the borrow.
    public var copied: JournalRecord {
        JournalRecord(sequence: sequence, appendedAtMilliseconds: appendedAtMilliseconds, kind: kind, retain: retain,
                      topic: Array(topic), payload: Array(payload))
    }
}
