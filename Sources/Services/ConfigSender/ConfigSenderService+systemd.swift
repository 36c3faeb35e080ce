extension ConfigSenderService {
    /// The config sender's supervision: its status line counts the meters
    /// known, those whose commands all succeeded, and the commands pending.
    func makeSupervision() -> SystemdSupervision {
        SystemdSupervision(loop: loop, log: log, brokers: ["internal", "central"]) { [unowned self] in
            let planner = core.planner
            let configured = planner.meters.keys.count { planner.lastResult($0) == CommandResult.Outcome.success.rawValue }
            return "\(planner.meters.count) meters, \(configured) configured, \(planner.pending.count) commands pending"
        }
    }
}
