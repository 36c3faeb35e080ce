import JSON
import RuleEngine

/// config-sender's status document (`<root>/config-sender/status[/<instance>]`,
/// retained; also its last will, `{"state":"offline"}`), which its Home
/// Assistant health device reads: totals and bounded lists, never a list as
/// long as the site.
///
/// `{"state","service","since","updated","today","connections":{"internal","central"},
/// "meters_known","meters_configured","meters_failed","pending_commands","commands_in_flight",
/// "commands_queued","pending":[first pending commands],"alerts_total","alerts":[first alerts],
/// "problems":[text],"requests":{counter: n},"log_lines_dropped"}`.
///
/// The serialized document stays within `maxBytes` whatever the number of
/// meters, alerts or pending commands: each list holds at most its limit,
/// each text at most `maxTextBytes`, and entries are dropped from the ends
/// of the lists until the document fits (the totals stay complete). A
/// meter's own detail is on its own retained topic (`MeterConfigurationState`).
public struct ConfigSenderStatus: Sendable, Equatable {
    /// The most bytes a serialized status takes.
    public static let maxBytes = 4096
    /// At most this many pending commands and alerts are listed.
    public static let pendingListLimit = 10
    public static let alertListLimit = 10
    /// A text in a list (an alert's message, a problem) is cut to this many bytes.
    public static let maxTextBytes = 160

    public struct Pending: Sendable, Equatable {
        public var meter: String
        public var command: String
        public var attempt: Int
        /// `queued`, `awaiting_reply` or `backoff`.
        public var state: String
        public var operationID: String
    }

    public struct Alert: Sendable, Equatable {
        public var meter: String
        public var command: String
        /// ISO 8601, UTC.
        public var since: String
        public var message: String
    }

    public var state: String
    public var since: String?
    public var updated: String?
    public var today: String?
    /// Broker name (`internal`, `central`) → `connected` or `disconnected`, in order.
    public var connections: [Connection] = []
    public var metersKnown = 0
    public var metersConfigured = 0
    public var metersFailed = 0
    public var pendingCommands = 0
    public var commandsInFlight = 0
    public var commandsQueued = 0
    /// The first pending commands (by meter), at most `pendingListLimit`.
    public var pending: [Pending] = []
    public var alertsTotal = 0
    /// The first alerts (by meter), at most `alertListLimit`.
    public var alerts: [Alert] = []
    /// What needs an operator (a damaged state database …).
    public var problems: [String] = []
    /// Relay requests' counters, when the packs take requests.
    public var requests: [Counter]?
    public var logLinesDropped: Int?

    public struct Connection: Sendable, Equatable {
        public var broker: String
        public var state: String
    }

    public struct Counter: Sendable, Equatable {
        public var name: String
        public var value: Int
    }

    public init(state: String) { self.state = state }

    /// `{"state":"offline","service":"config-sender"}`: the last will, and what a clean stop leaves behind.
    public static func offline(now: Instant? = nil) -> ConfigSenderStatus {
        var status = ConfigSenderStatus(state: "offline")
        status.updated = now?.iso8601
        return status
    }

    public var isOnline: Bool { state == "online" }

    // MARK: Writing

    /// The document, at most `maxBytes` long.
    public var payload: [UInt8] {
        var pending = Array(self.pending.prefix(Self.pendingListLimit))
        var alerts = Array(self.alerts.prefix(Self.alertListLimit))
        while true {
            let bytes = json(pending: pending, alerts: alerts).serialized()
            if bytes.count <= Self.maxBytes || (pending.isEmpty && alerts.isEmpty) { return bytes }
            if alerts.count >= pending.count { alerts.removeLast() } else { pending.removeLast() }
        }
    }

    /// The document as JSON (lists cut to their limits, not to `maxBytes`).
    public var json: JSONValue {
        json(pending: Array(pending.prefix(Self.pendingListLimit)), alerts: Array(alerts.prefix(Self.alertListLimit)))
    }

    private func json(pending: [Pending], alerts: [Alert]) -> JSONValue {
        var doc = JSONObject()
        doc["state"] = .string(state)
        doc["service"] = "config-sender"
        if let since { doc["since"] = .string(since) }
        if let updated { doc["updated"] = .string(updated) }
        guard isOnline else { return .object(doc) }
        if let today { doc["today"] = .string(today) }
        doc["connections"] = .object(JSONObject(connections.map { ($0.broker, JSONValue.string($0.state)) }))
        doc["meters_known"] = .integer(Int64(metersKnown))
        doc["meters_configured"] = .integer(Int64(metersConfigured))
        doc["meters_failed"] = .integer(Int64(metersFailed))
        doc["pending_commands"] = .integer(Int64(pendingCommands))
        doc["commands_in_flight"] = .integer(Int64(commandsInFlight))
        doc["commands_queued"] = .integer(Int64(commandsQueued))
        doc["pending"] = .array(pending.map { p in
            .object(["meter": .string(Self.cut(p.meter)), "command": .string(Self.cut(p.command)),
                     "attempt": .integer(Int64(p.attempt)), "state": .string(p.state), "oprid": .string(Self.cut(p.operationID))])
        })
        doc["alerts_total"] = .integer(Int64(alertsTotal))
        doc["alerts"] = .array(alerts.map { a in
            .object(["meter": .string(Self.cut(a.meter)), "command": .string(Self.cut(a.command)),
                     "since": .string(a.since), "message": .string(Self.cut(a.message))])
        })
        if !problems.isEmpty { doc["problems"] = .array(problems.prefix(Self.alertListLimit).map { .string(Self.cut($0)) }) }
        if let requests {
            doc["requests"] = .object(JSONObject(requests.map { ($0.name, JSONValue.integer(Int64($0.value))) }))
        }
        if let logLinesDropped { doc["log_lines_dropped"] = .integer(Int64(logLinesDropped)) }
        return .object(doc)
    }

    /// `text`, at most `maxTextBytes` long (cut at a character boundary, `…` added).
    static func cut(_ text: String) -> String {
        guard text.utf8.count > maxTextBytes else { return text }
        var out = ""
        for c in text {
            if out.utf8.count + c.utf8.count > maxTextBytes - 3 { break }
            out.append(c)
        }
        return out + "…"
    }

    // MARK: Reading

    /// A status document as published (nil: not a JSON object with a `state`).
    public init?(payload: [UInt8]) {
        guard let doc = (try? JSONValue.parse(payload))?.objectValue, let state = doc["state"]?.stringValue else { return nil }
        self.state = state
        since = doc["since"]?.stringValue
        updated = doc["updated"]?.stringValue
        today = doc["today"]?.stringValue
        connections = (doc["connections"]?.objectValue ?? [:]).compactMap { key, value in
            value.stringValue.map { Connection(broker: key, state: $0) }
        }
        func int(_ key: String) -> Int { Int(clamping: doc[key]?.intValue ?? 0) }
        metersKnown = int("meters_known")
        metersConfigured = int("meters_configured")
        metersFailed = int("meters_failed")
        pendingCommands = int("pending_commands")
        commandsInFlight = int("commands_in_flight")
        commandsQueued = int("commands_queued")
        alertsTotal = int("alerts_total")
        pending = (doc["pending"]?.arrayValue ?? []).compactMap { p in
            guard let meter = p["meter"]?.stringValue, let command = p["command"]?.stringValue else { return nil }
            return Pending(meter: meter, command: command, attempt: Int(clamping: p["attempt"]?.intValue ?? 0),
                           state: p["state"]?.stringValue ?? "", operationID: p["oprid"]?.stringValue ?? "")
        }
        alerts = (doc["alerts"]?.arrayValue ?? []).compactMap { a in
            guard let meter = a["meter"]?.stringValue, let command = a["command"]?.stringValue else { return nil }
            return Alert(meter: meter, command: command, since: a["since"]?.stringValue ?? "", message: a["message"]?.stringValue ?? "")
        }
        problems = (doc["problems"]?.arrayValue ?? []).compactMap(\.stringValue)
        requests = doc["requests"]?.objectValue.map { object in
            object.compactMap { key, value in value.intValue.map { Counter(name: key, value: Int(clamping: $0)) } }
        }
        logLinesDropped = doc["log_lines_dropped"]?.intValue.map { Int(clamping: $0) }
    }
}
