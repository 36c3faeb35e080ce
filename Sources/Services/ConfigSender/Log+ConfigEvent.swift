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
        log(level, message, keyValuePairs(fields))
    }
}

/// `Log` takes `KeyValuePairs`, which only a literal can make; events carry a
/// runtime list. Up to 12 fields map one to one; more are folded into the last.
func keyValuePairs(_ f: [(String, String)]) -> KeyValuePairs<String, String> {
    var f = f
    if f.count > 12 {
        let rest = f[11...].map { "\($0.0)=\($0.1)" }.joined(separator: " ")
        f = Array(f[..<11]) + [("more", rest)]
    }
    switch f.count {
    case 0: return [:]
    case 1: return [f[0].0: f[0].1]
    case 2: return [f[0].0: f[0].1, f[1].0: f[1].1]
    case 3: return [f[0].0: f[0].1, f[1].0: f[1].1, f[2].0: f[2].1]
    case 4: return [f[0].0: f[0].1, f[1].0: f[1].1, f[2].0: f[2].1, f[3].0: f[3].1]
    case 5: return [f[0].0: f[0].1, f[1].0: f[1].1, f[2].0: f[2].1, f[3].0: f[3].1, f[4].0: f[4].1]
    case 6: return [f[0].0: f[0].1, f[1].0: f[1].1, f[2].0: f[2].1, f[3].0: f[3].1, f[4].0: f[4].1, f[5].0: f[5].1]
    case 7: return [f[0].0: f[0].1, f[1].0: f[1].1, f[2].0: f[2].1, f[3].0: f[3].1, f[4].0: f[4].1, f[5].0: f[5].1,
                    f[6].0: f[6].1]
    case 8: return [f[0].0: f[0].1, f[1].0: f[1].1, f[2].0: f[2].1, f[3].0: f[3].1, f[4].0: f[4].1, f[5].0: f[5].1,
                    f[6].0: f[6].1, f[7].0: f[7].1]
    case 9: return [f[0].0: f[0].1, f[1].0: f[1].1, f[2].0: f[2].1, f[3].0: f[3].1, f[4].0: f[4].1, f[5].0: f[5].1,
                    f[6].0: f[6].1, f[7].0: f[7].1, f[8].0: f[8].1]
    case 10: return [f[0].0: f[0].1, f[1].0: f[1].1, f[2].0: f[2].1, f[3].0: f[3].1, f[4].0: f[4].1, f[5].0: f[5].1,
                     f[6].0: f[6].1, f[7].0: f[7].1, f[8].0: f[8].1, f[9].0: f[9].1]
    case 11: return [f[0].0: f[0].1, f[1].0: f[1].1, f[2].0: f[2].1, f[3].0: f[3].1, f[4].0: f[4].1, f[5].0: f[5].1,
                     f[6].0: f[6].1, f[7].0: f[7].1, f[8].0: f[8].1, f[9].0: f[9].1, f[10].0: f[10].1]
    default: return [f[0].0: f[0].1, f[1].0: f[1].1, f[2].0: f[2].1, f[3].0: f[3].1, f[4].0: f[4].1, f[5].0: f[5].1,
                     f[6].0: f[6].1, f[7].0: f[7].1, f[8].0: f[8].1, f[9].0: f[9].1, f[10].0: f[10].1, f[11].0: f[11].1]
    }
}
