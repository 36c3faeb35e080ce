import ArgumentParser
import Foundation

/// Lints rule packs and site configs, runs golden cases, replays captures,
/// starts new packs. Every subcommand goes through `Site` and `Compiler`, the
/// path the services take.
///
/// Exit status, every subcommand: 0 clean (warnings allowed), 1 errors found
/// or cases failed, 2 usage (an unknown option included: ArgumentParser's own
/// 64 is mapped to 2). docs/diagnostics.md lists them with every code.
@main
struct RuleCheck: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "rulecheck",
        abstract: "Lint rule packs and site configs, run golden rule tests, replay captures, start a new pack.",
        discussion: "Exit status: 0 clean or warnings only, 1 errors or failed cases, 2 usage.",
        subcommands: [Lint.self, Test.self, Run.self, New.self])

    static let usageStatus: Int32 = 2

    static func main() {
        do {
            var command = try parseAsRoot()
            try command.run()
        } catch {
            // A usage error exits 2 like every other one rulecheck reports, not EX_USAGE.
            if exitCode(for: error).rawValue == ExitCode.validationFailure.rawValue {
                FileHandle.standardError.write(Data((fullMessage(for: error) + "\n").utf8))
                Foundation.exit(usageStatus)
            }
            exit(withError: error)
        }
    }

    static func fail(_ message: String) -> Never {
        FileHandle.standardError.write(Data("rulecheck: \(message)\n".utf8))
        Foundation.exit(usageStatus)
    }
}
