import JSON
import RuleEngine

extension ConfigPlanner {
    /// At most this many pending commands are listed in the status (the counts are complete).
    public static let statusPendingListLimit = 100

    /// The status document the service publishes (retained) on the central broker.
    ///
    /// `connections` maps a broker name to `connected` or `disconnected`.
    /// `pending` lists the first `statusPendingListLimit` pending commands
    /// (by meter): a site reconnecting has tens of thousands, and the
    /// document is published every second or so.
    public func statusDocument(state: String, connections: [(String, String)], startedAt: Instant, now: Instant) -> JSONValue {
        let pending = self.pending
        var doc = JSONObject()
        doc["state"] = .string(state)
        doc["service"] = "config-sender"
        doc["since"] = .string(startedAt.iso8601)
        doc["updated"] = .string(now.iso8601)
        doc["today"] = .string(today(now))
        doc["connections"] = .object(JSONObject(connections.map { ($0.0, JSONValue.string($0.1)) }))
        doc["meters_known"] = .integer(Int64(meters.count))
        // For Home Assistant (HealthDevice.configSender): counted here, not by a
        // template over every meter.
        let results = meters.keys.map { lastResult($0) }
        doc["meters_configured"] = .integer(Int64(results.count { $0 == CommandResult.Outcome.success.rawValue }))
        doc["meters_failed"] = .integer(Int64(results.count {
            $0 == CommandResult.Outcome.failure.rawValue || $0 == CommandResult.Outcome.timeout.rawValue
        }))
        doc["pending_commands"] = .integer(Int64(pending.count))
        doc["commands_in_flight"] = .integer(Int64(awaitingReplyCount))
        doc["commands_queued"] = .integer(Int64(pending.filter(\.queued).count))
        doc["pending"] = .array(pending.prefix(Self.statusPendingListLimit).map { p in
            .object([
                "meter": .string(p.meter), "command": .string(p.command), "attempt": .integer(Int64(p.attempt)),
                "state": .string(p.queued ? "queued" : p.awaitingReply ? "awaiting_reply" : "backoff"), "oprid": .string(p.message.operationID),
            ])
        })
        var metersDoc: [(String, JSONValue)] = []
        for id in Set(meters.keys).union(records.keys).sorted() {
            let record = records[id] ?? MeterRecord()
            var m = JSONObject()
            m["known"] = .bool(meters[id] != nil)
            m["last_result"] = .string(lastResult(id))
            if let v = record.acknowledgedDate { m["acknowledged_date"] = .string(v) }
            if let v = record.digest { m["digest"] = .string(v) }
            if let v = record.lastError { m["last_error"] = .string(v) }
            var commands = JSONObject()
            for name in record.commands.keys.sorted() { commands[name] = .string(record.commands[name]!.outcome.rawValue) }
            m["commands"] = .object(commands)
            metersDoc.append((id, .object(m)))
        }
        doc["meters"] = .object(JSONObject(distinctKeys: metersDoc))
        doc["alerts"] = .array(alerts.map { a in
            .object(["meter": .string(a.meter), "command": .string(a.command),
                     "since": .string(Instant(epochMillis: a.since).iso8601), "message": .string(a.message)])
        })
        return .object(doc)
    }

    /// One word per meter: `pending` while a command is in flight; otherwise
    /// `timeout` or `failure` while any command's last result is one, `success`
    /// when every command's last result is, `none` before the first result.
    public func lastResult(_ id: String) -> String {
        if let meter = meters[id], !meter.pending.isEmpty { return "pending" }
        let results = records[id]?.commands.values.map(\.outcome) ?? []
        if results.contains(.timeout) { return CommandResult.Outcome.timeout.rawValue }
        if results.contains(.failure) { return CommandResult.Outcome.failure.rawValue }
        return results.isEmpty ? "none" : CommandResult.Outcome.success.rawValue
    }

    /// Per known meter, why it has a problem, or nil: a command that got no
    /// answer after its retries (an alert), a command the meter refused or
    /// that timed out, or a clock its discovery reports off by more than the
    /// threshold. Home Assistant shows it as the meter's `problem` sensor.
    public var problems: [String: String?] {
        var result: [String: String?] = [:]
        for (id, meter) in meters {
            if let alert = meter.alerts.values.sorted(by: { $0.command < $1.command }).first {
                result[id] = "no answer to \(alert.command)"
            } else if case let outcome = lastResult(id),
                      outcome == CommandResult.Outcome.failure.rawValue || outcome == CommandResult.Outcome.timeout.rawValue {
                result[id] = "last command: \(outcome)"
            } else if let offset = meter.reportedClockOffset {
                result[id] = "clock off by \(offset) s"
            } else {
                result[id] = .some(nil)
            }
        }
        return result
    }

    /// `{"state":"offline"}`: the last will, and what a clean stop leaves behind.
    public static func offlineStatus(now: Instant? = nil) -> JSONValue {
        var doc: JSONObject = ["state": "offline", "service": "config-sender"]
        if let now { doc["updated"] = .string(now.iso8601) }
        return .object(doc)
    }
}
