import ArgumentParser
import Foundation
import RuleEngine
import SiteSettings

struct New: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Start a new pack from an existing one: renamed, no golden cases or samples, a tests/site.yaml.",
        discussion: """
        Writes DIR/NAME/pack.yaml (DIR: --into, else the parent of --from) from --from's pack.yaml, \
        with the pack named NAME, its model and device name NAME in capitals, its description \
        and leading comments replaced, and claim: site (it claims only the meters a site names \
        with pack: NAME, so it cannot take another pack's ids before its pattern is narrowed); \
        an empty samples/ and a tests/ holding only a site.yaml. The new pack lints clean at once, \
        alone and with the packs beside it.
        Exit status: 0 written, 1 the source pack does not load or the result does not lint, 2 usage.
        """)

    @Argument(help: "The new pack's name: lower-case letters, digits, '_' and '-'.")
    var name: String

    @Option(help: "The pack directory to start from.")
    var from: String

    @Option(help: "Where the new pack's directory goes (default: beside --from).")
    var into: String?

    func run() throws {
        guard Self.isPackName(name) else { RuleCheck.fail("'\(name)' is not a pack name: use lower-case letters, digits, '_' and '-', starting with a letter or digit") }
        var source = from
        if source.hasSuffix("/pack.yaml") { source = (source as NSString).deletingLastPathComponent }
        while source.count > 1 && source.hasSuffix("/") { source.removeLast() }
        guard FileManager.default.fileExists(atPath: "\(source)/pack.yaml") else { RuleCheck.fail("no pack.yaml in \(from)") }
        let parent = into ?? (source as NSString).deletingLastPathComponent
        let target = parent.isEmpty ? name : "\(parent)/\(name)"
        guard !FileManager.default.fileExists(atPath: target) else { RuleCheck.fail("\(target) exists already; pick another name or --into") }

        var report = DiagnosticReport()
        guard let pack = Compiler.loadPack(at: source, into: &report), !report.hasErrors,
              let bytes = FileManager.default.contents(atPath: "\(source)/pack.yaml") else {
            print(report.description)
            print("rulecheck: \(source) does not load; fix it first (rulecheck lint \(source))")
            throw ExitCode(1)
        }
        let text = Self.renamed(String(decoding: bytes, as: UTF8.self), pack: pack, to: name, target: target)
        do {
            let fm = FileManager.default
            try fm.createDirectory(atPath: "\(target)/tests", withIntermediateDirectories: true)
            try fm.createDirectory(atPath: "\(target)/samples", withIntermediateDirectories: true)
            try Data(text.utf8).write(to: URL(fileURLWithPath: "\(target)/pack.yaml"))
            try Data(Self.siteConfig(name: name).utf8).write(to: URL(fileURLWithPath: "\(target)/tests/site.yaml"))
        } catch {
            try? FileManager.default.removeItem(atPath: target)
            RuleCheck.fail("cannot write \(target): \(error.localizedDescription)")
        }
        // What a newcomer runs next must pass: the new pack alone with its cases' config, and beside its siblings.
        let siblings = Compiler.packFiles([parent.isEmpty ? "." : parent], into: &report).map { ($0 as NSString).deletingLastPathComponent }
        let checked = Lint.check(packs: [target], configs: ["\(target)/tests/site.yaml"])
        var together = Lint.check(packs: siblings.contains(where: { ($0 as NSString).standardizingPath == (target as NSString).standardizingPath }) ? siblings : siblings + [target], configs: [])
        together.diagnostics = together.diagnostics.filter { $0.file.hasPrefix(target + "/") }
        guard checked.diagnostics.isEmpty && together.diagnostics.isEmpty else {
            var all = checked
            all.merge(together)
            print(all.description)
            print("rulecheck: \(target) was written but does not lint clean; this is a bug of rulecheck new")
            throw ExitCode(1)
        }
        print("""
        created \(target) from \(source) (pack '\(pack.name.value)'):
          \(target)/pack.yaml         pack: \(name), model \(name.uppercased()), claim: site
          \(target)/tests/site.yaml   the site config of its golden cases
          \(target)/samples/          empty: put one real message per topic here
        next:
          edit \(target)/pack.yaml (tags, routes, the id pattern) and rulecheck lint \(parent.isEmpty ? "." : parent)
          write \(target)/tests/NAME.in, then rulecheck test \(target) --update and read every .out
        """)
    }

    static func isPackName(_ s: String) -> Bool {
        guard let first = s.unicodeScalars.first, ("a"..."z").contains(first) || ("0"..."9").contains(first) else { return false }
        return s.unicodeScalars.allSatisfy { ("a"..."z").contains($0) || ("0"..."9").contains($0) || $0 == "_" || $0 == "-" }
    }

    /// The source pack's text with its name, model, device name, description
    /// and claim changed, each on its own line (comments elsewhere kept).
    static func renamed(_ text: String, pack: RulePack, to name: String, target: String) -> String {
        var lines = text.components(separatedBy: "\n")
        let model = name.uppercased()
        /// Replaces the value at `line`:`column` (to the end of its scalar).
        func replace(line number: Int, column: Int, with value: String) {
            let i = number - 1
            guard lines.indices.contains(i) else { return }
            let line = Array(lines[i])
            let start = min(max(0, column - 1), line.count)
            var end = start
            if end < line.count, line[end] == "\"" || line[end] == "'" {
                let quote = line[end]
                end += 1
                while end < line.count && line[end] != quote { end += 1 }
                end = min(end + 1, line.count)
            } else {
                while end < line.count && line[end] != " " && line[end] != "#" && line[end] != "," && line[end] != "}" { end += 1 }
            }
            lines[i] = String(line[..<start]) + value + String(line[end...])
        }
        replace(line: pack.name.mark.line, column: pack.name.mark.column, with: name)
        if let deviceName = pack.device.name {
            replace(line: deviceName.mark.line, column: deviceName.mark.column, with: "\"\(model) {id}\"")
        }
        // claim: site, whatever the source said, with a comment of its own.
        let claimLine = (pack.device.claim ?? pack.device.pattern ?? pack.device.idField).mark.line - 1
        if lines.indices.contains(claimLine) {
            let indent = String(lines[claimLine].prefix { $0 == " " })
            let claim = "\(indent)claim: site        # only the meters a site assigns (pack: \(name)); narrow the pattern, then claim: pattern"
            if pack.device.claim != nil { lines[claimLine] = claim } else { lines.insert(claim, at: claimLine + 1) }
        }
        for (i, line) in lines.enumerated() {
            let trimmed = line.drop { $0 == " " }
            if trimmed.hasPrefix("model:"), line.count - trimmed.count > 0 {
                let indent = line.prefix { $0 == " " }
                lines[i] = "\(indent)model: \(model)"
                break
            }
        }
        if let i = lines.firstIndex(where: { $0.hasPrefix("description:") }) {
            lines[i] = "description: \(model), started from pack \(pack.name.value) by rulecheck new; say here what it reads."
            // A folded or quoted description may go on over indented lines: they go too.
            while i + 1 < lines.count, lines[i + 1].first == " " { lines.remove(at: i + 1) }
        }
        // The leading comments described the source's model.
        let body = lines.drop { $0.hasPrefix("#") || $0.trimmingCharacters(in: .whitespaces).isEmpty }
        let header = [
            "# Rule pack \(name), started from pack \(pack.name.value) (rulecheck new): what it says about",
            "# tags, routes and commands is still \(pack.name.value)'s until edited.",
            "# Key by key reference: rules/README.md. Test with: rulecheck test \(target)",
        ]
        return (header + body).joined(separator: "\n")
    }

    static func siteConfig(name: String) -> String {
        """
        # Site config of the golden cases of pack \(name) that bring none of their own:
        # the defaults, with Home Assistant discovery off to keep the streams short.
        # A case that needs more (groups, a context, Home Assistant) gets its own NAME.yaml.
        root_topic: kpm33b
        homeassistant:
          enabled: false

        """
    }
}
