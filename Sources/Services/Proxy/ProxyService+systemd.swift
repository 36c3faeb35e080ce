extension ProxyService {
    /// The proxy's supervision: its status line names the meters heard since
    /// the start, the forwarding rate and the journal's depth.
    func makeSupervision() -> SystemdSupervision {
        let forwarded = PerMinute()
        return SystemdSupervision(loop: loop, log: log, brokers: ["internal", "central"]) { [unowned self] in
            let statistics = core.statistics
            return "\(statistics.lastSeen.count) meters, \(forwarded.rate(statistics.forwarded)) forwarded/min, "
                + "journal \(core.journal.unacknowledgedCount) messages"
                + (core.delivery.isBackPressureActive ? " (full: not reading the meters' broker)" : "")
        }
    }
}
