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
