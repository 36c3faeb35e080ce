import Foundation
import Testing
@testable import RuleEngine

/// docs/diagnostics.md has one row per code the compiler can emit, each with
/// its meaning and an example of the code's own rendering, and no other row.
@Suite struct DiagnosticsTableTests {
    /// The table's rows: code, meaning, example (the backquotes removed).
    static func rows() throws -> [(code: String, meaning: String, example: String)] {
        let text = try String(contentsOfFile: "\(Fixtures.repository)/docs/diagnostics.md", encoding: .utf8)
        return text.split(separator: "\n").compactMap { line in
            let cells = line.split(separator: "|", omittingEmptySubsequences: false).map { $0.trimmingCharacters(in: .whitespaces) }
            guard cells.count == 5, cells[1].count == 4, cells[1].first.map({ "YRCF".contains($0) }) == true else { return nil }
            return (cells[1], cells[2], cells[3].trimmingCharacters(in: CharacterSet(charactersIn: "`")))
        }
    }

    @Test func everyCodeIsInTheTableWithItsMeaningAndAnExample() throws {
        let rows = try Self.rows()
        #expect(rows.map(\.code) == Diagnostic.Code.allCases.map(\.rawValue))
        for code in Diagnostic.Code.allCases {
            guard let row = rows.first(where: { $0.code == code.rawValue }) else { continue }
            #expect(row.meaning == code.meaning, "\(code.rawValue)")
            let severity = code == .deprecatedKey ? "warning" : "error"
            #expect(row.example.contains(": \(severity)[\(code.rawValue)]: "), "\(code.rawValue): \(row.example)")
            #expect(row.example.range(of: #"^[^ :]+:\d+:\d+: "#, options: .regularExpression) != nil, "\(code.rawValue): \(row.example)")
        }
    }

    /// Every code is one the loaders and the compiler raise: none listed for nothing.
    @Test func everyCodeIsRaisedSomewhere() throws {
        let sources = "\(Fixtures.repository)/Sources/Engine"
        var text = ""
        for target in ["RuleEngine", "SiteSettings"] {
            let dir = "\(sources)/\(target)"
            for file in FileManager.default.enumerator(atPath: dir)?.compactMap({ $0 as? String }) ?? [] where file.hasSuffix(".swift")
                && !file.hasSuffix("Diagnostic+meaning.swift") {
                text += (try? String(contentsOfFile: "\(dir)/\(file)", encoding: .utf8)) ?? ""
            }
        }
        try #require(text.contains("enum Code"), "the engine's sources are not under \(sources)")
        for code in Diagnostic.Code.allCases {
            let name = String(describing: code)
            // Raised (`error(.code, …)`, `Diagnostic(.code, …)`) or mapped to (`inSiteConfig`: `case .unknownKey: .unknownConfigKey`).
            #expect(text.contains("(.\(name),") || text.contains(": .\(name)\n"),
                    "\(code.rawValue) (\(name)) is raised nowhere")
        }
    }
}
