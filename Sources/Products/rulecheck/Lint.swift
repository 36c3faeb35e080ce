import ArgumentParser
import Foundation
import RuleEngine
import SiteSettings

struct Lint: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Check rule packs and site configs; every problem as file:line:column.",
        discussion: """
        A directory holding pack.yaml is a pack; other .yaml files are site configs. \
        Directories are searched. A site config in a pack's tests directory (a golden case's) \
        is checked against that pack; any other against all packs named on the command line \
        together, as the services load them (who claims which meter, defaults per pack). \
        Every key of a site config is checked, the services' settings (brokers, journal, timers) too. \
        Warnings (a deprecated key) are printed but do not fail. \
        --format json, github (workflow annotation commands) and sarif (SARIF 2.1.0, for code scanning) \
        are for CI; text is for people. Every code: docs/diagnostics.md.
        Exit status: 0 clean or warnings only, 1 errors, 2 usage.
        """)

    @Option(help: "Output format: text, json, github or sarif.")
    var format: LintFormat = .text

    @Argument(help: "Packs, site configs, or directories holding them.")
    var paths: [String]

    func run() throws {
        var packs: [String] = []
        var configs: [String] = []
        for path in paths { collect(path, packs: &packs, configs: &configs) }
        packs = unique(packs)
        configs = unique(configs)
        if packs.isEmpty && configs.isEmpty { RuleCheck.fail("no pack.yaml or .yaml config found in \(paths.joined(separator: " "))") }
        let report = Self.check(packs: packs, configs: configs)
        let summary = LintSummary(packs: packs.count, configs: configs.count)
        print(format.render(report, summary), terminator: "")
        if report.hasErrors { throw ExitCode(1) }
    }

    /// Every diagnostic of `packs` and `configs`, with the sources to render them.
    static func check(packs: [String], configs: [String]) -> DiagnosticReport {
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
            guard let site = Site.loadSettings(at: file, into: &report)?.config else { continue }
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
        return report
    }

    private static func standardized(_ p: String) -> String { (p as NSString).standardizingPath }

    /// Drops paths named twice (a file given and also found in a directory).
    private func unique(_ paths: [String]) -> [String] {
        var seen: Set<String> = []
        return paths.filter { seen.insert(Self.standardized($0)).inserted }
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
