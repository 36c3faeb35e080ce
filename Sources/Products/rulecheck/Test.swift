import ArgumentParser
import Foundation
import RuleEngine
import RuleTesting
import SiteSettings

struct Test: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run the golden cases of rule packs (PACK/tests/NAME.in → NAME.out).",
        discussion: """
        Each case replays NAME.in through the pack with NAME.yaml as site config, \
        or tests/site.yaml when the case has none, and compares the output with NAME.out \
        byte for byte; a difference prints a unified diff. A case without NAME.out fails \
        until --update records it. A directory that holds no case fails. \
        A case that forwards no clean message, or shows a meter's clock more than a day off, \
        fails unless its input says so with a line '@expect-drops' or '@expect-clock-offset'; \
        --update records it anyway and warns. \
        PACK:CASE or --only CASE runs (or updates) one case.
        Exit status: 0 every case passed, 1 a case failed or a directory held none, 2 usage.
        """)

    @Argument(help: "Pack directories (PACK:CASE for one case), or a directory of packs whose own tests/ run with all of them (default: rules/ and every pack under it).")
    var packs: [String] = []

    @Flag(help: "Rewrite the expected outputs from what the rules produce now.")
    var update = false

    @Option(help: "Run (or update) only the cases of this name.")
    var only: String?

    @Option(help: "Also write the results as JUnit XML to this file (one testcase per golden case).")
    var junit: String?

    /// A directory of cases to run, the one case asked for, and the argument
    /// it came from (a directory of packs gives several): a case asked for
    /// must be in one of them.
    struct Selection {
        var dir: String
        var only: String?
        var argument: String
    }

    func run() throws {
        let selections = selected()
        var junitReport = JUnitReport()
        var passed = 0, failed = 0
        let several = selections.count > 1
        let found = selections.map { s in GoldenCase.discover(in: s.dir) }
        // A case asked for by name must be somewhere under its argument.
        var missing: [String] = []
        for (i, s) in selections.enumerated() {
            guard let one = s.only, !missing.contains(s.argument) else { continue }
            let anywhere = selections.indices.contains { selections[$0].argument == s.argument && found[$0].contains { $0.name == one } }
            if !anywhere {
                missing.append(s.argument)
                failed += 1
                let why = "no case '\(one)' in \(s.argument)"
                print("FAIL \(s.argument): \(why)")
                junitReport.add(suite: (selections[i].dir as NSString).lastPathComponent, case: one, file: "\(s.dir)/tests", seconds: 0,
                                failure: .init(message: why, body: why))
            }
        }
        for (selection, all) in zip(selections, found) {
            let dir = selection.dir
            let suite = (dir as NSString).lastPathComponent
            let cases = all.filter { c in selection.only.map { c.name == $0 } ?? true }
            if all.isEmpty {
                // Green must mean something: a directory that holds no case fails.
                failed += 1
                let why = "no golden cases in \(dir)/tests" + hint(dir)
                print("FAIL \(dir): \(why)")
                junitReport.add(suite: suite, case: "(cases)", file: "\(dir)/tests", seconds: 0, failure: .init(message: why, body: why))
                continue
            }
            for var c in cases {
                // Several directories: name each case with its own (kpm37/split, rules/unclaimed).
                if several { c.name = "\(suite)/\(c.name)" }
                let started = ContinuousClock.now
                let result = c.replay(origin: Origin(name: "rulecheck", version: "test"), buildAll: { rules, config throws(DiagnosticReport) in
                    try Site.load(rules: [rules], config: config).programs
                })
                let took = (ContinuousClock.now - started).components
                let seconds = Double(took.seconds) + Double(took.attoseconds) / 1e18
                let name = several ? String(c.name.dropFirst(suite.count + 1)) : c.name
                switch judge(c, result) {
                case .passed:
                    passed += 1
                    junitReport.add(suite: suite, case: name, file: c.inputPath, seconds: seconds, failure: nil)
                case .failed(let failure):
                    failed += 1
                    junitReport.add(suite: suite, case: name, file: c.inputPath, seconds: seconds, failure: failure)
                }
            }
        }
        print("\(passed) passed, \(failed) failed")
        if let junit {
            do {
                try Data(junitReport.xml.utf8).write(to: URL(fileURLWithPath: junit))
            } catch {
                RuleCheck.fail("cannot write \(junit): \(error.localizedDescription)")
            }
        }
        if failed > 0 { throw ExitCode(1) }
    }

    enum Verdict {
        case passed
        case failed(JUnitReport.Failure)
    }

    /// Prints the case's result (ok, updated, a diff, the suspicions) and says how it went.
    private func judge(_ c: GoldenCase, _ result: Result<GoldenCase.Outcome, GoldenFailure>) -> Verdict {
        let outcome: GoldenCase.Outcome
        switch result {
        case .failure(let problem):
            print("FAIL \(c.name): \(problem)")
            return .failed(.init(message: "the case did not run", body: problem.description))
        case .success(let o):
            outcome = o
        }
        let actual = outcome.output
        let expected = c.expected
        if update {
            for s in outcome.suspicions { print("warning: \(c.name): \(s)") }
            if expected == actual {
                print("ok   \(c.name)")
                return .passed
            }
            do {
                try Data(actual.utf8).write(to: URL(fileURLWithPath: c.outputPath))
            } catch {
                print("FAIL \(c.name): cannot write \(c.outputPath): \(error.localizedDescription)")
                return .failed(.init(message: "cannot write \(c.outputPath)", body: error.localizedDescription))
            }
            print("updated \(c.name)")
            return .passed
        }
        guard let expected else {
            print("FAIL \(c.name): no \(c.outputPath); record it with --update after checking the output:")
            print(actual, terminator: "")
            return .failed(.init(message: "no \(c.outputPath)", body: actual))
        }
        var problems: [String] = []
        var body = ""
        if expected != actual {
            let diff = UnifiedDiff.diff(lines(expected), lines(actual), fromName: c.outputPath, toName: "actual") ?? ""
            print("FAIL \(c.name): output differs")
            print(diff)
            problems.append("output differs")
            body += diff + "\n"
        }
        for s in outcome.suspicions {
            print("FAIL \(c.name): \(s)")
            problems.append(s)
            body += s + "\n"
        }
        if problems.isEmpty {
            print("ok   \(c.name)")
            return .passed
        }
        return .failed(.init(message: problems.joined(separator: "; "), body: body))
    }

    /// The directories to run, each with the case asked for.
    private func selected() -> [Selection] {
        guard !packs.isEmpty else {
            let root = "rules"
            var dirs = ((try? FileManager.default.contentsOfDirectory(atPath: root)) ?? []).sorted()
                .map { "\(root)/\($0)" }
                .filter { FileManager.default.fileExists(atPath: "\($0)/pack.yaml") }
            if dirs.isEmpty { RuleCheck.fail("no packs under rules/; name one: rulecheck test rules/NAME") }
            if FileManager.default.fileExists(atPath: "\(root)/tests") { dirs.append(root) }
            return dirs.map { Selection(dir: $0, only: only, argument: root) }
        }
        return packs.flatMap { argument -> [Selection] in
            var dir = argument
            var one = only
            // PACK:CASE, unless the whole argument names a directory.
            if !FileManager.default.fileExists(atPath: argument), let colon = argument.lastIndex(of: ":") {
                dir = String(argument[..<colon])
                one = String(argument[argument.index(after: colon)...])
                if let only, only != one { RuleCheck.fail("\(argument) and --only \(only) name different cases") }
            }
            if dir.hasSuffix("/") && dir.count > 1 { dir.removeLast() }
            guard FileManager.default.fileExists(atPath: dir) else { RuleCheck.fail("no such directory: \(dir)") }
            if FileManager.default.fileExists(atPath: "\(dir)/pack.yaml") { return [Selection(dir: dir, only: one, argument: argument)] }
            // A directory of packs: its packs' cases, then its own (several packs at once).
            var ignored = DiagnosticReport()
            let files = Compiler.packFiles([dir], into: &ignored)
            return (files.map { ($0 as NSString).deletingLastPathComponent } + [dir]).map { Selection(dir: $0, only: one, argument: argument) }
        }
    }

    /// What to run instead when `dir` holds cases itself (`rules/tests`).
    private func hint(_ dir: String) -> String {
        let own = (try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? []
        guard own.contains(where: { $0.hasSuffix(".in") }) else { return "" }
        let parent = (dir as NSString).deletingLastPathComponent
        return "; \(dir) holds cases itself: run rulecheck test \(parent.isEmpty ? "." : parent)"
    }

    private func lines(_ s: String) -> [String] {
        var l = s.components(separatedBy: "\n")
        if l.last == "" { l.removeLast() }
        return l
    }
}
