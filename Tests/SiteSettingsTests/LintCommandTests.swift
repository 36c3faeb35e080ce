import Foundation
import Testing
import TestSupport

/// `rulecheck lint`, the systemd units' reload guard: warnings print but pass.
@Suite struct LintCommandTests {
    /// Runs `rulecheck lint PACK/pack.yaml site.yaml` on `yaml` (the pack file,
    /// so the configs of its golden cases are not linted too): exit status and output.
    func lint(_ yaml: String) throws -> (status: Int32?, output: String) {
        let binary = try #require(builtProduct(named: "rulecheck"), "rulecheck is not built (swift build --product rulecheck)")
        let dir = Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        Fixtures.write(yaml, to: "\(dir)/site.yaml")
        let output = "\(dir)/output.txt"
        let child = try ChildProcess(executable: binary, arguments: ["lint", "\(Fixtures.pack)/pack.yaml", "\(dir)/site.yaml"], outputFile: output)
        #expect(child.wait(timeout: 30))
        let text = String(decoding: FileManager.default.contents(atPath: output) ?? Data(), as: UTF8.self)
        return (child.exitStatus, text.replacingOccurrences(of: dir + "/", with: ""))
    }

    @Test func outboxLimitWarnsAndPasses() throws {
        let (status, output) = try lint("proxy:\n  outbox_limit: 100000\n")
        #expect(status == 0)
        #expect(output == """
        site.yaml:2:3: warning[C004]: 'outbox_limit' is deprecated and ignored
         2 |   outbox_limit: 100000
           |   ^
        hint: the proxy keeps its backlog in a disk journal bounded by journal_max_bytes; remove outbox_limit
        0 errors, 1 warning found
        in 1 pack and 1 config

        """)
    }

    @Test func aBrokerErrorFails() throws {
        let (status, output) = try lint("proxy:\n  outbox_limit: 100000\nbrokers:\n  internal: { port: 0 }\n")
        #expect(status == 1)
        #expect(output == """
        site.yaml:2:3: warning[C004]: 'outbox_limit' is deprecated and ignored
         2 |   outbox_limit: 100000
           |   ^
        hint: the proxy keeps its backlog in a disk journal bounded by journal_max_bytes; remove outbox_limit
        site.yaml:4:21: error[C009]: port 0 is out of range
         4 |   internal: { port: 0 }
           |                     ^
        hint: use 1 to 65535
        1 error, 1 warning found
        in 1 pack and 1 config

        """)
    }
}
