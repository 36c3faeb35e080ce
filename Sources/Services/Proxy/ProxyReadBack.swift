import Clock

/// The read-back of what the central broker retains of this proxy's
/// announcements (`DiscoveryLedger`), once per central connection.
///
/// The proxy subscribes to its announcements' topics and to `topic`; once
/// the broker settled those subscriptions, it publishes a token of this
/// connection on `topic`. The broker queued the retained messages of the
/// subscriptions before it handles that publish, so the token's echo comes
/// after them: the read-back is complete. Without an echo within
/// `timeoutSeconds` (an ACL that forbids the topic), the proxy goes on with
/// the retained messages that arrived. Pure: the caller publishes and
/// checks the deadline.
struct ProxyReadBack {
    static let timeoutSeconds = 15.0

    /// `<root>/proxy/read-back`.
    let topic: String
    /// Makes the tokens of two proxies on one broker differ.
    let clientID: String
    private var connections = 0
    /// The read-back under way: its token, and once the token went out,
    /// when the proxy stops waiting for its echo.
    private(set) var pending: (token: String, deadline: MonotonicInstant?)?

    init(rootTopic: String, clientID: String) {
        topic = "\(rootTopic)/proxy/read-back"
        self.clientID = clientID
    }

    /// The central connection is (re)established: a new read-back begins.
    mutating func connected() {
        connections += 1
        pending = ("\(clientID) \(connections)", nil)
    }

    /// The broker settled the subscriptions: the token goes out (once).
    mutating func subscriptionsSettled(at now: MonotonicInstant) -> [ProxyAction] {
        guard let token = pending?.token, pending?.deadline == nil else { return [] }
        pending?.deadline = now.adding(seconds: Self.timeoutSeconds)
        return [.publishCentral(topic: topic, payload: Array(token.utf8))]
    }

    /// A message on `topic`: true when it is this read-back's echo, which ends it.
    mutating func echo(_ payload: UnsafeRawBufferPointer) -> Bool {
        guard let token = pending?.token, payload.elementsEqual(token.utf8) else { return false }
        pending = nil
        return true
    }

    /// True when the echo is overdue, which ends the read-back with what arrived.
    mutating func timedOut(at now: MonotonicInstant) -> Bool {
        guard let deadline = pending?.deadline, now >= deadline else { return false }
        pending = nil
        return true
    }
}
