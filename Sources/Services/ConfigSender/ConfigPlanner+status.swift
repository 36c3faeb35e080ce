import JSON
import RuleEngine

extension ConfigPlanner {
    /// The status document the service publishes (retained) on the central
    /// broker: totals, the first pending commands and alerts
    /// (`ConfigSenderStatus`'s limits); each meter's detail is
    /// `configurationState(_:)`, on its own topic.
    ///
    /// `connections` maps a broker name to `connected` or `disconnected`.
    public func statusDocument(state: String, connections: [(String, String)], startedAt: Instant, now: Instant) -> ConfigSenderStatus {
        var status = ConfigSenderStatus(state: state)
        status.since = startedAt.iso8601
        status.updated = now.iso8601
        status.today = today(now)
        status.connections = connections.map { .init(broker: $0.0, state: $0.1) }
        status.metersKnown = meters.count
        // For Home Assistant (HealthDevice.configSender): counted here, not by a
        // template over every meter.
        let results = meters.keys.map { lastResult($0) }
        status.metersConfigured = results.count { $0 == CommandResult.Outcome.success.rawValue }
        status.metersFailed = results.count {
            $0 == CommandResult.Outcome.failure.rawValue || $0 == CommandResult.Outcome.timeout.rawValue
        }
        status.pendingCommands = pendingCount
        status.commandsInFlight = awaitingReplyCount
        status.commandsQueued = queuedCount
        status.pending = pending(first: ConfigSenderStatus.pendingListLimit).map { p in
            .init(meter: p.meter, command: p.command, attempt: p.attempt,
                  state: p.queued ? "queued" : p.awaitingReply ? "awaiting_reply" : "backoff", operationID: p.message?.operationID ?? "")
        }
        let alerts = self.alerts
        status.alertsTotal = alerts.count
        status.alerts = alerts.prefix(ConfigSenderStatus.alertListLimit).map { a in
            .init(meter: a.meter, command: a.command, since: Instant(epochMillis: a.since).iso8601, message: a.message)
        }
        return status
    }

    /// Meter `id`'s configuration, for its own retained topic; nil when the meter is not known.
    public func configurationState(_ id: String) -> MeterConfigurationState? {
        guard meters[id] != nil else { return nil }
        let record = records[id] ?? MeterRecord()
        return MeterConfigurationState(
            lastResult: lastResult(id), acknowledgedDate: record.acknowledgedDate, digest: record.digest, lastError: record.lastError,
            commands: record.commands.keys.sorted().map { ($0, record.commands[$0]!.outcome.rawValue) })
    }

    /// One word per meter: `pending` while a command is in flight; otherwise
    /// `timeout` or `failure` while any command's last result is one, `success`
    /// when every command's last result is, `none` before the first result.
    public func lastResult(_ id: String) -> String {
        if hasPending(id) { return "pending" }
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
        for (id, meter) in meters.byID {
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
}
