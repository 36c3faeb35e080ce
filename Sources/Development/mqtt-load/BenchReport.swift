import Foundation

/// `mqtt-load report`: the closing table of `tools/bench` (its default run),
/// from the `--kv` files of the runs: medians over the runs, ratios, MiB, and
/// the targets, met or missed. Arithmetic that bash does awkwardly; the text
/// is what the script printed when it did it with awk.
///
///     mqtt-load report --runs DIR --repeat N --rate MSG_PER_S --rss-meters N
///
/// DIR holds `direct-*.kv`, `bridge-*.kv`, `proxy-*.kv` (one a run) and
/// `rss-1.kv` (the run with many meters). Exit status 1 when a target is missed.
enum BenchReport {
    static let usage = "usage: mqtt-load report --runs DIR --repeat N --rate MSG_PER_S --rss-meters N"

    static func main(_ arguments: [String]) -> Int32 {
        var runs: String?, repeatCount = "1", rate = "", rssMeters = ""
        var args = arguments[...]
        while let arg = args.popFirst() {
            guard let value = args.popFirst() else { return usageError("\(arg) needs a value") }
            switch arg {
            case "--runs": runs = value
            case "--repeat": repeatCount = value
            case "--rate": rate = value
            case "--rss-meters": rssMeters = value
            default: return usageError("unknown option \(arg)")
            }
        }
        guard let runs else { return usageError("--runs is required") }
        let report = BenchReport.Runs(directory: runs)
        let (text, missed) = render(report, repeatCount: repeatCount, rate: rate, rssMeters: rssMeters)
        print(text, terminator: "")
        return missed ? 1 : 0
    }

    private static func usageError(_ message: String) -> Int32 {
        FileHandle.standardError.write(Data("mqtt-load report: \(message)\n\(usage)\n".utf8))
        return 64
    }

    /// The `--kv` files of one bench directory.
    struct Runs {
        /// Per configuration, the lines of each run's file, each line its `key=value` pairs.
        var configurations: [String: [[[String: String]]]] = [:]
        var rss: [[String: String]] = []

        init(directory: String) {
            let names = ((try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []).sorted()
            for config in ["direct", "bridge", "proxy"] {
                configurations[config] = names.filter { $0.hasPrefix("\(config)-") && $0.hasSuffix(".kv") }
                    .map { Runs.read("\(directory)/\($0)") }
            }
            rss = Runs.read("\(directory)/rss-1.kv")
        }

        init(configurations: [String: [[[String: String]]]], rss: [[String: String]]) {
            self.configurations = configurations
            self.rss = rss
        }

        static func read(_ path: String) -> [[String: String]] {
            guard let text = try? String(contentsOfFile: path, encoding: .utf8) else { return [] }
            return text.split(separator: "\n").map(parse)
        }

        /// `a=1 b=2` → `[a: 1, b: 2]` (a later key wins; the value ends at a second `=`).
        static func parse<S: StringProtocol>(_ line: S) -> [String: String] {
            var pairs: [String: String] = [:]
            for token in line.split(whereSeparator: { $0 == " " || $0 == "\t" }) {
                let parts = token.split(separator: "=", omittingEmptySubsequences: false)
                pairs[String(parts[0])] = parts.count > 1 ? String(parts[1]) : ""
            }
            return pairs
        }
    }

    /// A value of one run: from the first line of `phase` (any line when
    /// empty) that has `key`.
    static func field(_ lines: [[String: String]], _ phase: String, _ key: String) -> String? {
        for line in lines where phase.isEmpty || line["phase"] == phase {
            if let value = line[key] { return value }
        }
        return nil
    }

    /// Readings lost over all phases of one run.
    static func lostTotal(_ lines: [[String: String]]) -> Double {
        lines.reduce(0) { sum, line in sum + (line["lost"].map(awkNumber) ?? 0) }
    }

    /// The median over the runs (the lower one of an even count), as written;
    /// `-` when no run has the value. Values that are no number sort first.
    static func median(_ values: [String]) -> String {
        guard !values.isEmpty else { return "-" }
        let sorted = values.enumerated().sorted { a, b in
            let (x, y) = (number(a.element), number(b.element))
            switch (x, y) {
            case let (x?, y?): return x != y ? x < y : a.offset < b.offset
            case (nil, _?): return true
            case (_?, nil): return false
            case (nil, nil): return a.offset < b.offset
            }
        }
        return sorted[(sorted.count + 1) / 2 - 1].element
    }

    static func collect(_ runs: Runs, _ config: String, _ phase: String, _ key: String) -> String {
        median((runs.configurations[config] ?? []).compactMap { field($0, phase, key) })
    }

    /// The most any run of `config` lost.
    static func collectLost(_ runs: Runs, _ config: String) -> String {
        let totals = (runs.configurations[config] ?? []).map(lostTotal)
        return totals.max().map(awkFormat) ?? ""
    }

    /// `a / b` to two decimals; `-` when `b` is not above 0 or `a` is `-`.
    static func ratio(_ a: String, _ b: String) -> String {
        awkNumber(b) > 0 && a != "-" ? String(format: "%.2f", awkNumber(a) / awkNumber(b)) : "-"
    }

    /// KiB as MiB to one decimal; `-` for anything but a whole number.
    static func mib(_ kib: String) -> String {
        !kib.isEmpty && kib.allSatisfy(\.isASCIIDigit) ? String(format: "%.1f", awkNumber(kib) / 1024) : "-"
    }

    /// `met` when `a op b` holds for two numbers; `MISSED` otherwise (a figure missing included).
    static func target(_ text: String, _ a: String, _ op: String, _ b: String) -> (line: String, met: Bool) {
        func numeric(_ s: String) -> Bool { !s.isEmpty && s.allSatisfy { $0.isASCIIDigit || $0 == "." } }
        var met = false
        if numeric(a), numeric(b) {
            let (x, y) = (awkNumber(a), awkNumber(b))
            met = switch op {
            case ">=": x >= y
            case "<=": x <= y
            case "==": x == y
            default: false
            }
        }
        return (met ? "met     \(text)" : "MISSED  \(text)", met)
    }

    static func render(_ runs: Runs, repeatCount: String, rate: String, rssMeters: String) -> (String, missed: Bool) {
        let configs = ["direct", "bridge", "proxy"]
        var tput: [String: String] = [:], p50: [String: String] = [:], p99: [String: String] = [:], lost: [String: String] = [:]
        for c in configs {
            tput[c] = collect(runs, c, "burst", "throughput")
            p50[c] = collect(runs, c, "rate", "p50_ms")
            p99[c] = collect(runs, c, "rate", "p99_ms")
            lost[c] = collectLost(runs, c)
        }
        var cpu: [String: String] = [:], ctx: [String: String] = [:], rss: [String: String] = [:]
        for c in ["bridge", "proxy"] {
            cpu[c] = collect(runs, c, "burst", "cpu_us_per_msg.\(c)")
            ctx[c] = collect(runs, c, "burst", "switches_per_msg.\(c)")
            rss[c] = collect(runs, c, "", "peak_rss_kib.\(c)")
        }
        // With many meters: VmHWM after the rate phase (every meter announced, no
        // backlog) and at the end (after the burst, whose backlog fills the proxy's
        // inbox and outbox); RssAnon excludes the shared Swift libraries' code.
        let rssSteady = field(runs.rss, "rate", "hwm_kib.proxy") ?? ""
        let anonSteady = field(runs.rss, "rate", "anon_peak_kib.proxy") ?? ""
        let rssMany = field(runs.rss, "", "peak_rss_kib.proxy") ?? ""
        let anonMany = field(runs.rss, "burst", "anon_peak_kib.proxy") ?? ""
        let lostMany = runs.rss.isEmpty ? "" : awkFormat(lostTotal(runs.rss))

        var out = "median of \(repeatCount) run(s); throughput from the burst, latency from the \(rate) msg/s phase\n"
        let widths = [-8, 8, 8, 8, 8, 8, 5, 11, 8, 8]
        out += row(["config", "msg/s", "÷direct", "÷bridge", "p50 ms", "p99 ms", "lost", "CPU µs/msg", "ctx/msg", "RSS MiB"], widths)
        for c in configs {
            out += row([c, tput[c]!, ratio(tput[c]!, tput["direct"]!), ratio(tput[c]!, tput["bridge"]!), p50[c]!, p99[c]!,
                        lost[c]!, nonEmpty(cpu[c]), nonEmpty(ctx[c]), mib(rss[c] ?? "")], widths)
        }
        out += "proxy with \(rssMeters) meters: peak RSS \(mib(rssSteady)) MiB at \(rate) msg/s (anon \(mib(anonSteady))), "
            + "\(mib(rssMany)) MiB after the burst (anon \(mib(anonMany))); lost \(lostMany)\n"
        out += "\n"
        // 30 MB = 30,000,000 bytes = 29,297 KiB.
        let lostSum = (lost["proxy"]!.isEmpty ? 1 : Int(lost["proxy"]!) ?? 0) + (Int(lostMany) ?? 1)
        let targets = [
            target("proxy throughput ≥ bridge (\(tput["proxy"]!) vs \(tput["bridge"]!) msg/s)", tput["proxy"]!, ">=", tput["bridge"]!),
            target("proxy CPU ≤ 8 µs per message (\(cpu["proxy"]!))", cpu["proxy"]!, "<=", "8"),
            target("proxy peak RSS ≤ 30 MB with \(rssMeters) meters (\(mib(rssMany)) MiB)", rssMany, "<=", "29297"),
            target("zero lost (proxy \(lost["proxy"]!), \(rssMeters) meters \(lostMany))", String(lostSum), "==", "0"),
        ]
        for t in targets { out += t.line + "\n" }
        return (out, targets.contains { !$0.met })
    }

    private static func nonEmpty(_ s: String?) -> String {
        guard let s, !s.isEmpty else { return "-" }
        return s
    }

    /// One line as bash's `printf '%-8s %8s …'` wrote it: widths in bytes,
    /// negative for left-aligned.
    static func row(_ cells: [String], _ widths: [Int]) -> String {
        zip(cells, widths).map { cell, width in
            let pad = String(repeating: " ", count: max(0, abs(width) - cell.utf8.count))
            return width < 0 ? cell + pad : pad + cell
        }.joined(separator: " ") + "\n"
    }

    /// A string as awk reads it as a number: its longest numeric prefix, else 0.
    static func awkNumber(_ s: String) -> Double {
        s.withCString { strtod($0, nil) }
    }

    /// A whole number or a decimal, as the string it is; nil when it is none.
    static func number(_ s: String) -> Double? {
        var end: UnsafeMutablePointer<CChar>?
        return s.withCString { start in
            let value = strtod(start, &end)
            return end.map { UnsafePointer($0) } == start ? nil : value
        }
    }

    /// A number as awk prints it with `print`: integers without a point.
    static func awkFormat(_ v: Double) -> String {
        v == v.rounded() && abs(v) < 1e15 ? String(Int64(v)) : String(format: "%.6g", v)
    }
}

private extension Character {
    var isASCIIDigit: Bool { ("0"..."9").contains(self) }
}
