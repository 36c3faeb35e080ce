import Foundation

/// CPU time and memory of another process (Linux `/proc`), for the CPU per
/// message of the proxy or the bridge and their peak RSS.
struct ProcessWatch: Sendable {
    let name: String
    let pid: Int32

    private static let ticksPerSecond = Double(sysconf(Int32(_SC_CLK_TCK)))

    /// utime + stime of all its threads so far, in seconds; nil once it is gone.
    func cpuSeconds() -> Double? {
        guard let text = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
              let close = text.lastIndex(of: ")") else { return nil }
        // After "pid (comm)": state is field 3, utime 14, stime 15.
        let fields = text[text.index(after: close)...].split(separator: " ")
        guard fields.count > 12, let user = Double(fields[11]), let system = Double(fields[12]) else { return nil }
        return (user + system) / Self.ticksPerSecond
    }

    /// A `/proc/PID/status` value in KiB: `VmHWM` (peak RSS) or `VmRSS`.
    func statusKiB(_ key: String) -> Int? {
        guard let text = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8) else { return nil }
        for line in text.split(separator: "\n") where line.hasPrefix(key + ":") {
            // "VmHWM:\t   24708 kB"
            return Int(line.dropFirst(key.count + 1).split(whereSeparator: { $0 == " " || $0 == "\t" }).first ?? "")
        }
        return nil
    }
}

/// The monotonic clock in nanoseconds.
@inline(__always) func monotonicNs() -> UInt64 { DispatchTime.now().uptimeNanoseconds }
