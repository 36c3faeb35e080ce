extension Log {
    /// Renders one planner event as one line. An `.alert` becomes `msg=ALERT
    /// event=NAME …` at level error: what an operator's log watch greps for.
    func emit(_ event: ConfigEvent) {
        let level: LogLevel = switch event.level {
        case .debug: .debug
        case .info: .info
        case .warning: .warning
        case .error, .alert: .error
        }
        var fields = event.fields.map { ($0.key, $0.value) }
        var message = event.name
        if event.level == .alert {
            message = "ALERT"
            fields.insert(("event", event.name), at: 0)
        }
        log(level, message, fields: fields)
    }
}
