import RuleEngine

/// How a pending command ended, as the meter's record keeps it (`result`,
/// and `lastError` unless it succeeded) and as the log tells it (`event`):
/// a reply (success or failure), the broker refusing it, or no reply to any
/// attempt. Pure: built from the pending command and what ended it.
struct CommandOutcome: Sendable {
    var result: CommandResult
    /// The record's `lastError` from now on; nil: left as it is.
    var lastError: String?
    var event: ConfigEvent

    /// The meter replied to `pending` (the reply's oprid may be an earlier attempt's).
    static func reply(_ reply: CommandReply, to pending: PendingCommand, date: String, at now: Instant) -> CommandOutcome {
        let p = pending
        let result = CommandResult(outcome: reply.success ? .success : .failure, value: p.message?.value, date: date,
                                   at: now.epochMillis, operationID: reply.operationID, message: reply.message)
        if reply.success {
            return CommandOutcome(result: result, lastError: nil, event: ConfigEvent(.info, "command_acknowledged", [
                ("meter", p.meter), ("command", p.command), ("value", p.message?.value), ("oprid", reply.operationID),
                ("attempt", String(p.attempt)),
            ]))
        }
        return CommandOutcome(result: result, lastError: "\(p.command) failed: \(reply.message ?? "no reason given")",
                              event: ConfigEvent(.warning, "command_failed", [
                                  ("meter", p.meter), ("command", p.command), ("value", p.message?.value), ("oprid", reply.operationID),
                                  ("msg", reply.message), ("next", "next opportunity"),
                              ]))
    }

    /// The broker refused the publication of `pending` (MQTT 5: its ACL): no reply can come.
    static func refused(_ pending: PendingCommand, reason: String, date: String, at now: Instant) -> CommandOutcome {
        let p = pending
        let message = "the broker refused \(p.command): \(reason)"
        return CommandOutcome(
            result: CommandResult(outcome: .failure, value: p.message?.value, date: date, at: now.epochMillis,
                                  operationID: p.message?.operationID, message: message),
            lastError: message,
            event: ConfigEvent(.error, "command_refused", [
                ("meter", p.meter), ("command", p.command), ("topic", p.message?.topic), ("reason", reason),
                ("hint", "check the internal broker's ACL for this service's account"), ("next", "next opportunity"),
            ]))
    }

    /// No attempt of `pending` was answered. `firstTime`: the meter was not
    /// already alerted for it (then it is an alert, else a warning).
    static func noReply(_ pending: PendingCommand, firstTime: Bool, date: String, at now: Instant) -> CommandOutcome {
        let p = pending
        let message = "no reply to \(p.command) after \(p.attempt) attempts"
        let fields: [(String, String?)] = [("meter", p.meter), ("command", p.command), ("attempts", String(p.attempt)),
                                           ("message", message), ("next", "next opportunity")]
        return CommandOutcome(
            result: CommandResult(outcome: .timeout, value: p.message?.value, date: date, at: now.epochMillis,
                                  operationID: p.message?.operationID, message: message),
            lastError: message,
            event: firstTime ? ConfigEvent(.alert, "meter_not_answering", fields) : ConfigEvent(.warning, "meter_still_not_answering", fields))
    }
}
