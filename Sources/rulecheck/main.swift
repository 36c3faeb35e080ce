import ArgumentParser
import Foundation
import RuleEngine
import RuleTesting
import SiteSettings

/// Lints rule packs and site configs, runs golden cases, replays captures.
/// Every subcommand goes through `Site` and `Compiler`, the path the services take.
@main
struct RuleCheck: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "rulecheck",
        abstract: "Lint rule packs and site configs, run golden rule tests, replay captures.",
        subcommands: [Lint.self, Test.self, Run.self])

    /// Exit codes: 0 clean (warnings allowed), 1 errors found, 2 usage.
    static func fail(_ message: String) -> Never {
        FileHandle.standardError.write(Data("rulecheck: \(message)\n".utf8))
        Foundation.exit(2)
    }
}

struct Lint: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Check rule packs and site configs; every problem as file:line:column.",
        discussion: """
        A directory holding pack.yaml is a pack; other .yaml files are site configs. \
        Directories are searched. A site config in a pack's tests directory (a golden case's) \
        is checked against that pack; any other against all packs named on the command line \
        together, as the services load them (who claims which meter, defaults per pack). \
        Every key of a site config is checked, the services' settings (brokers, journal, timers) too. \
        Warnings (a deprecated key) are printed but do not fail.
        Exit status: 0 clean or warnings only, 1 errors, 2 usage.
        """)

    @Argument(help: "Packs, site configs, or directories holding them.")
    var paths: [String]

    func run() throws {
        var packs: [String] = []
        var configs: [String] = []
        for path in paths { collect(path, packs: &packs, configs: &configs) }
        packs = unique(packs)
        configs = unique(configs)
        if packs.isEmpty && configs.isEmpty { RuleCheck.fail("no pack.yaml or .yaml config found in \(paths.joined(separator: " "))") }
        var report = DiagnosticReport()
        var loadedPacks: [(dir: String, pack: RulePack)] = []
        for dir in packs {
            guard let pack = Compiler.loadPack(at: dir, into: &report) else { continue }
            loadedPacks.append((dir, pack))
            _ = Compiler.compile(pack: pack, site: SiteConfig(file: "(defaults)"), into: &report)
        }
        // Packs that share a process: names twice, patterns claiming the same ids.
        if loadedPacks.count > 1 {
            var checked = DiagnosticReport()
            _ = Compiler.compile(packs: loadedPacks.map(\.pack), site: SiteConfig(file: "(defaults)"), into: &checked)
            report.merge(DiagnosticReport(diagnostics: checked.diagnostics.filter { $0.code == .packClaim }))
        }
        for file in configs {
            guard let site = Site.loadConfig(at: file, into: &report)?.config else { continue }
            // A golden case's config goes with its pack; any other with every pack, as a service loads them.
            let owner = loadedPacks.first { file.hasPrefix(standardized($0.dir) + "/tests/") || file.hasPrefix($0.dir + "/tests/") }
            let packs = owner.map { [$0.pack] } ?? loadedPacks.map(\.pack)
            guard !packs.isEmpty else { continue }
            var checked = DiagnosticReport()
            _ = Compiler.compile(packs: packs, site: site, into: &checked)
            // The packs' own problems were reported above; keep those of the config.
            report.merge(DiagnosticReport(diagnostics: checked.diagnostics.filter { $0.file == file }))
        }
        // Missing packs yield errors; render every source that has diagnostics.
        for d in report.diagnostics where report.sources[d.file] == nil {
            if let data = FileManager.default.contents(atPath: d.file) { report.sources[d.file] = SourceText(path: d.file, bytes: [UInt8](data)) }
        }
        let checked = "\(packs.count) pack\(packs.count == 1 ? "" : "s") and \(configs.count) config\(configs.count == 1 ? "" : "s")"
        if report.diagnostics.isEmpty {
            print("ok: \(checked) checked")
            return
        }
        print(report.description)
        print("in \(checked)")
        if report.hasErrors { throw ExitCode(1) }
    }

    private func standardized(_ p: String) -> String { (p as NSString).standardizingPath }

    /// Drops paths named twice (a file given and also found in a directory).
    private func unique(_ paths: [String]) -> [String] {
        var seen: Set<String> = []
        return paths.filter { seen.insert(standardized($0)).inserted }
    }

    private func collect(_ path: String, packs: inout [String], configs: inout [String]) {
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDir) else {
            RuleCheck.fail("no such file or directory: \(path)")
        }
        if !isDir.boolValue {
            if (path as NSString).lastPathComponent == "pack.yaml" { packs.append((path as NSString).deletingLastPathComponent) }
            else { configs.append(path) }
            return
        }
        let base = path.hasSuffix("/") ? String(path.dropLast()) : path
        let entries = ((try? FileManager.default.contentsOfDirectory(atPath: path)) ?? []).sorted()
        if entries.contains("pack.yaml") { packs.append(base) }
        for entry in entries where !entry.hasPrefix(".") {
            let full = "\(base)/\(entry)"
            var sub: ObjCBool = false
            _ = FileManager.default.fileExists(atPath: full, isDirectory: &sub)
            if sub.boolValue { collect(full, packs: &packs, configs: &configs) }
            else if entry != "pack.yaml" && (entry.hasSuffix(".yaml") || entry.hasSuffix(".yml")) { configs.append(full) }
        }
    }
}

struct Test: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run the golden cases of rule packs (PACK/tests/NAME.in → NAME.out).",
        discussion: """
        Each case replays NAME.in through the pack with NAME.yaml as site config, \
        or tests/site.yaml when the case has none, and compares the output with NAME.out \
        byte for byte; a difference prints a unified diff. A case without NAME.out fails \
        until --update records it.
        """)

    @Argument(help: "Pack directories, or a directory of packs whose own tests/ run with all of them (default: rules/ and every pack under it).")
    var packs: [String] = []

    @Flag(help: "Rewrite the expected outputs from what the rules produce now.")
    var update = false

    func run() throws {
        var dirs = packs
        if dirs.isEmpty {
            let root = "rules"
            dirs = ((try? FileManager.default.contentsOfDirectory(atPath: root)) ?? []).sorted()
                .map { "\(root)/\($0)" }
                .filter { FileManager.default.fileExists(atPath: "\($0)/pack.yaml") }
            if dirs.isEmpty { RuleCheck.fail("no packs under rules/; name one: rulecheck test rules/NAME") }
            if FileManager.default.fileExists(atPath: "\(root)/tests") { dirs.append(root) }
        } else {
            // A directory of packs: its packs' cases, then its own (several packs at once).
            dirs = dirs.flatMap { dir -> [String] in
                if FileManager.default.fileExists(atPath: "\(dir)/pack.yaml") { return [dir] }
                var ignored = DiagnosticReport()
                let files = Compiler.packFiles([dir], into: &ignored)
                return files.map { ($0 as NSString).deletingLastPathComponent } + [dir]
            }
        }
        var passed = 0, failed = 0
        for dir in dirs {
            let cases = GoldenCase.discover(in: dir)
            if cases.isEmpty { print("\(dir): no golden cases in \(dir)/tests") }
            for var c in cases {
                // Several directories: name each case with its own (kpm37/split, rules/unclaimed).
                if dirs.count > 1 { c.name = "\((dir as NSString).lastPathComponent)/\(c.name)" }
                let result = c.run(origin: Origin(name: "rulecheck", version: "test"), buildAll: { rules, config throws(DiagnosticReport) in
                    try Site.load(rules: [rules], config: config).programs
                })
                switch result {
                case .failure(let problem):
                    failed += 1
                    print("FAIL \(c.name): \(problem)")
                case .success(let actual):
                    let expected = c.expected
                    if expected == actual {
                        passed += 1
                        print("ok   \(c.name)")
                        continue
                    }
                    if update {
                        try Data(actual.utf8).write(to: URL(fileURLWithPath: c.outputPath))
                        passed += 1
                        print("updated \(c.name)")
                        continue
                    }
                    failed += 1
                    if let expected {
                        print("FAIL \(c.name): output differs")
                        print(UnifiedDiff.diff(lines(expected), lines(actual), fromName: c.outputPath, toName: "actual") ?? "")
                    } else {
                        print("FAIL \(c.name): no \(c.outputPath); record it with --update after checking the output:")
                        print(actual, terminator: "")
                    }
                }
            }
        }
        print("\(passed) passed, \(failed) failed")
        if failed > 0 { throw ExitCode(1) }
    }

    private func lines(_ s: String) -> [String] {
        var l = s.components(separatedBy: "\n")
        if l.last == "" { l.removeLast() }
        return l
    }
}

struct Run: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Replay a capture (TOPIC JSON per line) through a pack and print what would be published.",
        discussion: """
        Output, one line each: TOPIC PAYLOAD for a message (payload byte for byte); \
        '+ TOPIC PAYLOAD' for a retained one ('+ TOPIC' alone: an empty retained payload); \
        '# drop REASON TOPIC: DETAIL' for a drop (unless --no-drops). \
        Input lines '@now yyyyMMddHHmmss' and '@advance SECONDS' move the replay clock. \
        A line may start with its receive time as mosquitto_sub -F '%U %t %p' (Unix time) or \
        -F '%I %t %p' (ISO 8601) writes it; the replay clock then follows the capture. \
        Meters keep local time: the replay converts with this machine's time zone unless \
        --utc-offset, --tz or an '@tz ±HH:MM' line in the input says otherwise.
        """)

    @Option(help: "A rule pack directory, or a directory of packs; repeat for several.")
    var rules: [String]

    @Option(help: "The site config file.")
    var config: String?

    @Option(help: "Replay clock start, yyyyMMddHHmmss local time (default: now).")
    var now: String?

    @Option(help: "The site's UTC offset (±HH:MM) for meters' local clocks (default: this machine's time zone).")
    var utcOffset: String?

    @Option(help: "The site's time zone by name (e.g. Europe/Zurich), instead of this machine's.")
    var tz: String?

    @Flag(help: "Do not print drops.")
    var noDrops = false

    @Argument(help: "The capture file (default: standard input).")
    var capture: String?

    func run() throws {
        let programs: ProgramSet
        do {
            programs = try Site.load(rules: rules, config: config).programs
        } catch {
            print(error.description)
            throw ExitCode(1)
        }
        // Meters keep local time: the site's offset at each moment, as the services take it.
        let zone: @Sendable (Int64) -> Int
        if let utcOffset {
            guard let offset = Replay.utcOffset(utcOffset) else { RuleCheck.fail("--utc-offset expects ±HH:MM") }
            zone = { _ in offset }
        } else {
            guard let timeZone = tz.map({ TimeZone(identifier: $0) }) ?? TimeZone.current else { RuleCheck.fail("unknown time zone '\(tz ?? "")'") }
            zone = { timeZone.secondsFromGMT(for: Date(timeIntervalSince1970: Double($0))) }
        }
        var start: Instant
        if let now {
            guard let t = Replay.instant(now) else { RuleCheck.fail("--now expects yyyyMMddHHmmss") }
            let offset = zone(t.epochMillis / 1000)
            start = Instant(epochMillis: t.epochMillis - Int64(offset) * 1000, utcOffsetSeconds: offset)
        } else {
            let seconds = Date().timeIntervalSince1970
            start = Instant(epochSeconds: seconds, utcOffsetSeconds: zone(Int64(seconds)))
        }
        let input: Data
        if let capture {
            guard let data = FileManager.default.contents(atPath: capture) else { RuleCheck.fail("cannot read \(capture)") }
            input = data
        } else {
            input = FileHandle.standardInput.readDataToEndOfFile()
        }
        var replay = Replay(router: PackRouter(programs: programs, origin: Origin(name: "rulecheck", version: "run")), now: start, zone: zone)
        replay.showDrops = !noDrops
        var out = ""
        out.reserveCapacity(input.count)
        do {
            try replay.run([UInt8](input)) { line in
                out += line
                out += "\n"
                if out.utf8.count > 1 << 16 { FileHandle.standardOutput.write(Data(out.utf8)); out = "" }
            }
        } catch {
            FileHandle.standardOutput.write(Data(out.utf8))
            FileHandle.standardError.write(Data("\(capture ?? "stdin"): \(error.description)\n".utf8))
            throw ExitCode(1)
        }
        FileHandle.standardOutput.write(Data(out.utf8))
    }
}
