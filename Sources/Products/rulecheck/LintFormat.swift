import ArgumentParser
import Foundation
import RuleEngine

/// What was checked, for the closing line.
struct LintSummary {
    var packs: Int
    var configs: Int

    var text: String {
        "\(packs) pack\(packs == 1 ? "" : "s") and \(configs) config\(configs == 1 ? "" : "s")"
    }
}

/// `rulecheck lint --format`: one report, four renderings. Text is for
/// people (unchanged); the others are for CI and carry the same diagnostics
/// in the same order, each with its file, line, column, severity, code,
/// message and hint.
enum LintFormat: String, ExpressibleByArgument, CaseIterable {
    case text, json, github, sarif

    func render(_ report: DiagnosticReport, _ summary: LintSummary) -> String {
        switch self {
        case .text: Self.text(report, summary)
        case .json: Self.json(report, summary)
        case .github: Self.github(report, summary)
        case .sarif: Self.sarif(report)
        }
    }

    /// `file:line:col: error[CODE]: …`, the source line, a caret, `hint: …`; then the counts.
    static func text(_ report: DiagnosticReport, _ summary: LintSummary) -> String {
        if report.diagnostics.isEmpty { return "ok: \(summary.text) checked\n" }
        return report.description + "\nin \(summary.text)\n"
    }

    /// One JSON document: `diagnostics` (sorted as in text), `errors`, `warnings`, `checked`.
    static func json(_ report: DiagnosticReport, _ summary: LintSummary) -> String {
        let diagnostics: [[String: Any]] = report.sorted.map { d in
            var o: [String: Any] = [
                "file": d.file, "line": d.mark.line, "column": d.mark.column,
                "severity": d.severity.rawValue, "code": d.code.rawValue, "message": d.message,
            ]
            if let hint = d.hint { o["hint"] = hint }
            return o
        }
        let errors = report.diagnostics.filter { $0.severity == .error }.count
        return encode([
            "diagnostics": diagnostics,
            "errors": errors,
            "warnings": report.diagnostics.count - errors,
            "checked": ["packs": summary.packs, "configs": summary.configs],
        ])
    }

    /// GitHub Actions workflow commands: `::error file=…,line=…,col=…,title=…::message`,
    /// one line per diagnostic (the hint after an escaped newline), then the counts as plain text.
    static func github(_ report: DiagnosticReport, _ summary: LintSummary) -> String {
        var out = ""
        for d in report.sorted {
            let properties = [
                "file=\(property(d.file))", "line=\(d.mark.line)", "col=\(d.mark.column)", "title=\(property("\(d.code.rawValue) \(d.code.meaning)"))",
            ]
            let message = d.message + (d.hint.map { "\nhint: \($0)" } ?? "")
            out += "::\(d.severity.rawValue) \(properties.joined(separator: ","))::\(data(message))\n"
        }
        let errors = report.diagnostics.filter { $0.severity == .error }.count
        let warnings = report.diagnostics.count - errors
        out += report.diagnostics.isEmpty ? "ok: \(summary.text) checked\n"
            : "\(errors) error\(errors == 1 ? "" : "s"), \(warnings) warning\(warnings == 1 ? "" : "s") in \(summary.text)\n"
        return out
    }

    /// A workflow command's message: `%`, CR and LF escaped.
    static func data(_ s: String) -> String {
        s.replacingOccurrences(of: "%", with: "%25").replacingOccurrences(of: "\r", with: "%0D").replacingOccurrences(of: "\n", with: "%0A")
    }

    /// A workflow command's property value: also `:` and `,`.
    static func property(_ s: String) -> String {
        data(s).replacingOccurrences(of: ":", with: "%3A").replacingOccurrences(of: ",", with: "%2C")
    }

    /// SARIF 2.1.0 as GitHub code scanning reads it: one run of the tool
    /// `rulecheck`, a rule per code used (its one-sentence meaning), a result
    /// per diagnostic with its level, message and physical location (a
    /// relative path against the checkout, `%SRCROOT%`; an absolute one as a
    /// `file://` URI).
    static func sarif(_ report: DiagnosticReport) -> String {
        let diagnostics = report.sorted
        var codes: [Diagnostic.Code] = []
        for d in diagnostics where !codes.contains(d.code) { codes.append(d.code) }
        let rules: [[String: Any]] = codes.map { code in
            let name = String(describing: code)
            return [
                "id": code.rawValue,
                "name": name.prefix(1).uppercased() + name.dropFirst(),
                "shortDescription": ["text": code.meaning],
                "fullDescription": ["text": code.meaning],
                "help": ["text": "\(code.rawValue): \(code.meaning) Every code with an example: docs/diagnostics.md."],
                "defaultConfiguration": ["level": code == .deprecatedKey ? "warning" : "error"],
            ]
        }
        let results: [[String: Any]] = diagnostics.map { d in
            var location: [String: Any] = ["uri": uri(d.file)]
            if !d.file.hasPrefix("/") { location["uriBaseId"] = "%SRCROOT%" }
            return [
                "ruleId": d.code.rawValue,
                "ruleIndex": codes.firstIndex(of: d.code)!,
                "level": d.severity.rawValue,
                "message": ["text": d.message + (d.hint.map { "\nhint: \($0)" } ?? "")],
                "locations": [[
                    "physicalLocation": [
                        "artifactLocation": location,
                        "region": ["startLine": max(1, d.mark.line), "startColumn": max(1, d.mark.column)],
                    ],
                ]],
            ]
        }
        return encode([
            "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
            "version": "2.1.0",
            "runs": [[
                "tool": ["driver": ["name": "rulecheck", "rules": rules]],
                "results": results,
            ]],
        ])
    }

    /// A path as a URI reference: `./` dropped, unsafe bytes percent-encoded.
    static func uri(_ path: String) -> String {
        var p = path
        while p.hasPrefix("./") { p.removeFirst(2) }
        var allowed = CharacterSet.urlPathAllowed
        allowed.remove(charactersIn: "%")
        let encoded = p.addingPercentEncoding(withAllowedCharacters: allowed) ?? p
        return p.hasPrefix("/") ? "file://" + encoded : encoded
    }

    static func encode(_ object: Any) -> String {
        let data = (try? JSONSerialization.data(withJSONObject: object, options: [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes])) ?? Data("{}".utf8)
        return String(decoding: data, as: UTF8.self) + "\n"
    }
}
