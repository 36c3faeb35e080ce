import Foundation
import Synchronization

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

    /// Context switches (voluntary and not) of its threads alive now: a thread
    /// handing each message to another costs one or two per message.
    func contextSwitches() -> Int? {
        guard let tasks = try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/task") else { return nil }
        var total = 0
        for task in tasks {
            guard let text = try? String(contentsOfFile: "/proc/\(pid)/task/\(task)/status", encoding: .utf8) else { continue }
            for line in text.split(separator: "\n") where line.hasPrefix("voluntary_ctxt_switches:") || line.hasPrefix("nonvoluntary_ctxt_switches:") {
                total += Int(line.split(whereSeparator: { $0 == " " || $0 == "\t" }).last ?? "") ?? 0
            }
        }
        return total
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

/// Samples the anonymous resident memory (`RssAnon`: heap, stacks — not the
/// shared libraries' code, which `VmHWM` includes) of the watched processes
/// every 20 ms and keeps the largest value since the last `reset`.
final class MemorySampler: Sendable {
    private let watches: [ProcessWatch]
    private let peaks: Mutex<[Int]>

    init(_ watches: [ProcessWatch]) {
        self.watches = watches
        peaks = Mutex(Array(repeating: 0, count: watches.count))
        let thread = Thread { [self] in
            while true {
                let now = watches.map { $0.statusKiB("RssAnon") ?? 0 }
                self.peaks.withLock { peaks in for i in peaks.indices { peaks[i] = max(peaks[i], now[i]) } }
                usleep(20_000)
            }
        }
        thread.name = "load-memory"
        thread.start()
    }

    func reset() { peaks.withLock { peaks in peaks = peaks.map { _ in 0 } } }

    /// Per watched process, the peak `RssAnon` in KiB since `reset`.
    func peaksKiB() -> [Int] { peaks.withLock { $0 } }
}
