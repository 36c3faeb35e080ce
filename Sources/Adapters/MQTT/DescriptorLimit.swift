#if canImport(Glibc)
import Glibc
#endif

/// The process's limit on open file descriptors (`RLIMIT_NOFILE`), raised for
/// a fleet of connections.
///
/// Every libmosquitto 2.0.11 client holds three descriptors from
/// `mosquitto_new` on: its socket and a socket pair (`net__socketpair`, made
/// even when nothing selects on it). An `EventLoop` has no `FD_SETSIZE`
/// ceiling, so the process limit is the one that matters: 10,000 clients need
/// about 30,000.
public enum DescriptorLimit {
    /// Descriptors one libmosquitto client holds (socket and socket pair).
    public static let perClient = 3

    public struct Outcome: Sendable, CustomStringConvertible {
        /// The soft limit before and after.
        public var before: Int
        public var now: Int
        /// The hard limit after (raised too when running as root).
        public var hard: Int
        public var needed: Int
        /// Why the limit stayed below `needed`; nil when it is enough.
        public var problem: String?

        public var isEnough: Bool { problem == nil }

        public var description: String {
            if let problem { return problem }
            return before == now ? "descriptor limit \(now) (\(needed) needed)"
                : "descriptor limit raised from \(before) to \(now) (\(needed) needed)"
        }
    }

    /// Raises the soft limit to at least `needed` when it is lower: up to the
    /// hard limit, and the hard limit itself when the process may
    /// (CAP_SYS_RESOURCE, usually root; at most `/proc/sys/fs/nr_open`).
    public static func raise(to needed: Int) -> Outcome {
        var limit = rlimit()
        guard getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0 else {
            return Outcome(before: 0, now: 0, hard: 0, needed: needed,
                           problem: "cannot read the descriptor limit: \(String(cString: strerror(errno)))")
        }
        let before = clamp(limit.rlim_cur), hard = clamp(limit.rlim_max)
        if before >= needed { return Outcome(before: before, now: before, hard: hard, needed: needed) }
        var raised = limit
        raised.rlim_cur = rlim_t(needed)
        var hardNote = ""
        if hard < needed {
            raised.rlim_max = rlim_t(needed)
            if setrlimit(Int32(RLIMIT_NOFILE.rawValue), &raised) == 0 {
                return Outcome(before: before, now: needed, hard: needed, needed: needed)
            }
            hardNote = " (raising the hard limit \(hard) failed: \(String(cString: strerror(errno)))"
                + (needed > nrOpen() ? "; /proc/sys/fs/nr_open is \(nrOpen())" : "; it needs root") + ")"
            raised.rlim_max = limit.rlim_max
            raised.rlim_cur = limit.rlim_max
        }
        _ = setrlimit(Int32(RLIMIT_NOFILE.rawValue), &raised)
        _ = getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit)
        let now = clamp(limit.rlim_cur)
        guard now < needed else { return Outcome(before: before, now: now, hard: clamp(limit.rlim_max), needed: needed) }
        return Outcome(before: before, now: now, hard: clamp(limit.rlim_max), needed: needed,
                       problem: "\(needed) file descriptors are needed but the limit is \(now)\(hardNote); "
                           + "raise it (ulimit -n, LimitNOFILE= in a systemd unit, /etc/security/limits.conf) or use fewer connections")
    }

    private static func clamp(_ value: rlim_t) -> Int {
        value > rlim_t(Int32.max) ? Int(Int32.max) : Int(value)
    }

    private static func nrOpen() -> Int {
        guard let file = fopen("/proc/sys/fs/nr_open", "r") else { return 1_048_576 }
        defer { fclose(file) }
        var line = [CChar](repeating: 0, count: 32)
        guard fgets(&line, Int32(line.count), file) != nil else { return 1_048_576 }
        let text = String(decoding: line.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        return Int(text.filter(\.isNumber)) ?? 1_048_576
    }
}
