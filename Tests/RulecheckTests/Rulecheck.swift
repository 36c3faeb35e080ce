import Foundation
import Testing
import TestSupport

/// The `rulecheck` binary run as a user runs it: from a shell, in a working
/// directory of its own (a scratch copy of the repository's `rules/` and
/// `config/`), its standard output and error kept apart.
struct Rulecheck {
    struct Result {
        var status: Int32?
        var stdout: String
        var stderr: String
    }

    /// A scratch directory holding a copy of `rules/` and `config/`; removed by `cleanup`.
    let directory: String
    let binary: String

    init() throws {
        binary = try #require(builtProduct(named: "rulecheck"), "rulecheck is not built (swift build --product rulecheck)")
        directory = Repository.temporaryDirectory("rulecheck-tests")
        for part in ["rules", "config"] {
            try FileManager.default.copyItem(atPath: "\(Repository.root)/\(part)", toPath: "\(directory)/\(part)")
        }
    }

    func cleanup() { try? FileManager.default.removeItem(atPath: directory) }

    /// Runs `rulecheck ARGUMENTS` in the scratch directory.
    func callAsFunction(_ arguments: String...) throws -> Result { try run(arguments) }

    func run(_ arguments: [String]) throws -> Result {
        let out = "\(directory)/.stdout", err = "\(directory)/.stderr"
        let quoted = arguments.map { "'" + $0.replacingOccurrences(of: "'", with: "'\\''") + "'" }.joined(separator: " ")
        let child = try ChildProcess(executable: "/bin/sh", arguments: ["-c", "cd '\(directory)' && exec '\(binary)' \(quoted) >.stdout 2>.stderr"])
        #expect(child.wait(timeout: 120), "rulecheck \(arguments.joined(separator: " ")) did not finish")
        defer {
            try? FileManager.default.removeItem(atPath: out)
            try? FileManager.default.removeItem(atPath: err)
        }
        return Result(status: child.exitStatus, stdout: read(".stdout"), stderr: read(".stderr"))
    }

    func read(_ path: String) -> String {
        String(decoding: FileManager.default.contents(atPath: "\(directory)/\(path)") ?? Data(), as: UTF8.self)
    }

    func write(_ text: String, to path: String) { Repository.write(text, to: "\(directory)/\(path)") }

    func exists(_ path: String) -> Bool { FileManager.default.fileExists(atPath: "\(directory)/\(path)") }

    /// `path`'s text with `old` replaced by `new` (which must be there).
    func edit(_ path: String, _ old: String, _ new: String) throws {
        let text = read(path)
        #expect(text.contains(old), "\(path) has no '\(old)'")
        write(text.replacingOccurrences(of: old, with: new), to: path)
    }

    func parseJSON(_ text: String) throws -> [String: Any] {
        try #require(try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any], "not a JSON object:\n\(text)")
    }
}
