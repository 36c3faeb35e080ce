import JSON

/// What the meters' broker says of itself in `$SYS`: Mosquitto (2.0.11)
/// publishes these retained every `sys_interval` (10 s by default), when they
/// changed. They are whole-broker figures — every client's messages
/// together, not the proxy's alone — but a message dropped on the meters'
/// broker is lost before the proxy could see it, so it is the only place a
/// site can see that happen.
///
/// - `dropped`: messages the broker dropped because a client's queue was full
///   (`max_queued_messages`, `max_queued_bytes`), since the broker started;
/// - `stored_messages`, `stored_bytes`: messages it holds in memory (queued
///   for clients, retained — its own `$SYS` messages included), what a crash
///   of the broker puts at risk until its next `autosave_interval`.
///
/// The internal broker's ACL lets the proxy's account read exactly these topics.
struct InternalBrokerFigures {
    static let topics: [(topic: String, key: String)] = [
        ("$SYS/broker/publish/messages/dropped", "dropped"),
        ("$SYS/broker/store/messages/count", "stored_messages"),
        ("$SYS/broker/store/messages/bytes", "stored_bytes"),
    ]

    /// By key; absent until the broker published it.
    private(set) var values: [String: Int] = [:]
    /// Messages the broker dropped while the proxy watched: the rises of
    /// `dropped` after its first value (which counts since the broker's
    /// start), across a restart of the broker (its count starts again at 0).
    private(set) var droppedWhileWatched = 0

    /// Takes one `$SYS` message; the figure's key, its previous value and its
    /// new one, or nil when the topic is not one of `topics` or the payload
    /// not a count.
    mutating func take(topic: String, payload: UnsafeRawBufferPointer) -> (key: String, previous: Int?, value: Int)? {
        guard let key = Self.topics.first(where: { $0.topic == topic })?.key,
              payload.count <= 20, let value = Int(String(decoding: payload, as: UTF8.self)), value >= 0 else { return nil }
        let previous = values[key]
        values[key] = value
        if key == "dropped", let previous { droppedWhileWatched += value >= previous ? value - previous : value }
        return (key, previous, value)
    }

    /// `{"dropped": n, "stored_messages": n, "stored_bytes": n}`, null for a
    /// figure not heard of yet.
    var document: JSONValue {
        var object = JSONObject()
        for (_, key) in Self.topics { object[key] = values[key].map { .integer(Int64($0)) } ?? .null }
        return .object(object)
    }
}
