import JSON

/// The proxy's status document (`<root>/status[/<instance>]`, retained; also
/// its last will, `{"state":"offline"}`), which its Home Assistant health
/// device and the other instances read: totals and bounded lists, never a
/// list as long as the site. A meter's own detail is elsewhere: its
/// discovery message, and its silence (`MeterSilence`) for the hand-over.
///
/// `{"state","version","started","time","connections":{"internal","central"},
/// "counters":{"received","received_qos0","forwarded","announced","owned_elsewhere",
/// "dead_lettered","refused_retried","dropped":{reason: n}},"journal":{…},
/// "internal_broker":{…},"meters_seen","meters_online","forwarded_per_minute",
/// "problems_total","problems":[text],"read_back":{…}|null,"log_lines_dropped"}`.
/// Every drop reason is listed, zero or not, so a dashboard sees the full set.
///
/// The serialized document stays within `maxBytes`: at most
/// `problemListLimit` problems of at most `maxTextBytes` each, dropped from
/// the end until it fits.
public struct ProxyStatus: Sendable, Equatable {
    public static let maxBytes = ConfigSenderStatus.maxBytes
    public static let problemListLimit = 10
    public static let maxTextBytes = ConfigSenderStatus.maxTextBytes

    public struct Counter: Sendable, Equatable {
        public var name: String
        public var value: Int
    }

    public var state: String
    public var version: String?
    /// ISO 8601, UTC: when the proxy started, and when it wrote this.
    public var started: String?
    public var time: String?
    public var internalConnected = false
    public var centralConnected = false
    /// `received`, `received_qos0`, `forwarded`, … in order.
    public var counters: [Counter] = []
    /// Drop reason → count, every reason.
    public var dropped: [Counter] = []
    public var journal: JSONObject = [:]
    public var internalBroker: JSONValue = .null
    /// Meters heard since the start, and those heard within their allowed silence.
    public var metersSeen = 0
    public var metersOnline = 0
    public var forwardedPerMinute = 0
    public var problems: [String] = []
    /// How many problems there are (the list holds the first few); nil: `problems.count`.
    public var problemsTotal: Int?
    public var readBack: (complete: Bool, announced: Int, seen: Int)?
    public var logLinesDropped: Int?

    public init(state: String) { self.state = state }

    public static func == (a: Self, b: Self) -> Bool { a.json == b.json }

    public var isOnline: Bool { state == "online" }

    /// The value of counter `name` (0 when absent).
    public func counter(_ name: String) -> Int { counters.first { $0.name == name }?.value ?? 0 }

    // MARK: Writing

    /// The document, at most `maxBytes` long.
    public var payload: [UInt8] {
        var problems = Array(self.problems.prefix(Self.problemListLimit))
        while true {
            let bytes = json(problems: problems).serialized()
            if bytes.count <= Self.maxBytes || problems.isEmpty { return bytes }
            problems.removeLast()
        }
    }

    public var json: JSONValue { json(problems: Array(problems.prefix(Self.problemListLimit))) }

    private func json(problems: [String]) -> JSONValue {
        var doc = JSONObject()
        doc["state"] = .string(state)
        if let version { doc["version"] = .string(version) }
        if let started { doc["started"] = .string(started) }
        if let time { doc["time"] = .string(time) }
        // The last will, written before anything is known, is the state alone.
        guard time != nil else { return .object(doc) }
        doc["connections"] = [
            "internal": .string(internalConnected ? "connected" : "disconnected"),
            "central": .string(centralConnected ? "connected" : "disconnected"),
        ]
        var counters = JSONObject(self.counters.map { ($0.name, JSONValue.integer(Int64($0.value))) })
        counters["dropped"] = .object(JSONObject(dropped.map { ($0.name, JSONValue.integer(Int64($0.value))) }))
        doc["counters"] = .object(counters)
        doc["journal"] = .object(journal)
        doc["internal_broker"] = internalBroker
        doc["meters_seen"] = .integer(Int64(metersSeen))
        doc["meters_online"] = .integer(Int64(metersOnline))
        doc["forwarded_per_minute"] = .integer(Int64(forwardedPerMinute))
        doc["problems_total"] = .integer(Int64(problemsTotal ?? self.problems.count))
        doc["problems"] = .array(problems.map { .string(ConfigSenderStatus.cut($0)) })
        doc["read_back"] = readBack.map { ["complete": .bool($0.complete), "announced": .integer(Int64($0.announced)),
                                           "seen": .integer(Int64($0.seen))] } ?? .null
        if let logLinesDropped { doc["log_lines_dropped"] = .integer(Int64(logLinesDropped)) }
        return .object(doc)
    }

    // MARK: Reading

    /// A status document as published (nil: not a JSON object with a `state`).
    public init?(payload: [UInt8]) {
        guard let doc = (try? JSONValue.parse(payload))?.objectValue, let state = doc["state"]?.stringValue else { return nil }
        func int(_ value: JSONValue?) -> Int { Int(clamping: value?.intValue ?? 0) }
        self.state = state
        version = doc["version"]?.stringValue
        started = doc["started"]?.stringValue
        time = doc["time"]?.stringValue
        internalConnected = doc["connections"]?["internal"]?.stringValue == "connected"
        centralConnected = doc["connections"]?["central"]?.stringValue == "connected"
        for (name, value) in doc["counters"]?.objectValue ?? [:] {
            if name == "dropped" {
                dropped = (value.objectValue ?? [:]).map { Counter(name: $0.0, value: int($0.1)) }
            } else if value.intValue != nil {
                counters.append(Counter(name: name, value: int(value)))
            }
        }
        journal = doc["journal"]?.objectValue ?? [:]
        internalBroker = doc["internal_broker"] ?? .null
        metersSeen = int(doc["meters_seen"])
        metersOnline = int(doc["meters_online"])
        forwardedPerMinute = int(doc["forwarded_per_minute"])
        problems = (doc["problems"]?.arrayValue ?? []).compactMap(\.stringValue)
        problemsTotal = doc["problems_total"]?.intValue.map { Int(clamping: $0) }
        if let r = doc["read_back"]?.objectValue {
            readBack = (r["complete"] == .bool(true), int(r["announced"]), int(r["seen"]))
        }
        logLinesDropped = doc["log_lines_dropped"]?.intValue.map { Int(clamping: $0) }
    }
}
