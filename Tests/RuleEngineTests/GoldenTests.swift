import Foundation
import Testing
@testable import RuleEngine
@testable import RuleTesting

/// The golden cases of the KPM33B pack, the same ones `rulecheck test` runs.
@Suite struct GoldenTests {
    static let cases = GoldenCase.discover(in: Fixtures.pack)

    @Test func thereAreCases() {
        #expect(Self.cases.count >= 10)
        #expect(Self.cases.contains { $0.name == "capture-eny-now" })
    }

    @Test(arguments: cases.map(\.name))
    func goldenCase(_ name: String) throws {
        let c = try #require(Self.cases.first { $0.name == name })
        let expected = try #require(c.expected, "no \(c.outputPath): record it with rulecheck test --update")
        let outcome = try c.replay(origin: Origin(name: "rulecheck", version: "test")) { rules, config throws(DiagnosticReport) in
            ProgramSet(single: try Compiler.build(rules: rules, config: config))
        }.get()
        #expect(outcome.suspicions.isEmpty, "golden case \(name): \(outcome.suspicions)")
        let actual = outcome.output
        if actual != expected {
            let diff = UnifiedDiff.diff(expected.split(separator: "\n", omittingEmptySubsequences: false).map(String.init),
                                        actual.split(separator: "\n", omittingEmptySubsequences: false).map(String.init),
                                        fromName: c.outputPath, toName: "actual")
            Issue.record("golden case \(name) differs:\n\(diff ?? "")")
        }
    }

    /// The real capture: no all-zero message and no duplicate is forwarded, and every
    /// forwarded value is byte-identical to a value in the input.
    @Test func realCaptureIsCleanAndLossless() throws {
        let c = try #require(Self.cases.first { $0.name == "capture-eny-now" })
        let output = try c.run(origin: Origin(name: "test", version: "0"), build: Compiler.build(rules:config:)).get()
        let data = output.split(separator: "\n").filter { !$0.hasPrefix("#") && !$0.hasPrefix("+") }
        #expect(data.count == 2072 - 1036 - 412)
        #expect(output.split(separator: "\n").filter { $0.hasPrefix("# drop all_zero") }.count == 1036)
        #expect(output.split(separator: "\n").filter { $0.hasPrefix("# drop duplicate") }.count == 412)
        // Timestamped: the replay clock follows the capture, so each meter that
        // forwards anything is announced once (a frozen clock made it 624 times).
        let announced = output.split(separator: "\n").filter { $0.hasPrefix("+ kpm33b/discovery/") }
            .map { $0.split(separator: " ")[1] }
        #expect(announced == ["kpm33b/discovery/33B1225950028", "kpm33b/discovery/33B1225950027", "kpm33b/discovery/33B1225950029"])
        let input = String(decoding: try Data(contentsOf: URL(fileURLWithPath: c.inputPath)), as: UTF8.self)
        var seen = Set<String>()
        for line in data {
            let payload = line[line.firstIndex(of: " ")!...].dropFirst()
            #expect(!payload.contains("\"active_energy\":0.000"), "an all-zero reading was forwarded: \(line)")
            let key = String(line)
            #expect(seen.insert(key).inserted, "forwarded twice: \(line)")
            // "active_energy":163.486 must appear as "zygsz":163.486 in the capture, byte for byte.
            let value = payload.split(separator: ",").last!.split(separator: ":").last!.dropLast()
            #expect(input.contains("\"zygsz\":\(value),"), "value \(value) is not byte-identical to the input")
        }
    }
}
