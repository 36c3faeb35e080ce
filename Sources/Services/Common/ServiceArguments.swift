import ArgumentParser
import Foundation
import RuleEngine

/// The command-line options every service shares, and its start-up: the one
/// load → check → compile path, whose diagnostics stop start-up.
public struct ServiceArguments: ParsableArguments {
    @Option(help: "The rule pack directory (or its pack.yaml).")
    public var rules: String = "rules/kpm33b"

    @Option(help: "The site config file.")
    public var config: String = "config/config.yaml"

    @Option(name: .customLong("internal"), help: ArgumentHelp("The meters' broker, overriding the config.", valueName: "mqtt://HOST:PORT"))
    public var internalURL: String?

    @Option(name: .customLong("central"), help: ArgumentHelp("The central broker, overriding the config.", valueName: "mqtt://HOST:PORT"))
    public var centralURL: String?

    @Option(help: "debug, info, warning or error.")
    public var logLevel: String = "info"

    public init() {}

    public func validate() throws {
        guard LogLevel(name: logLevel) != nil else {
            throw ValidationError("unknown log level '\(logLevel)' (use debug, info, warning or error)")
        }
    }

    /// Builds the program, or prints every diagnostic to standard error and exits 1.
    public func start() throws -> (program: Program, options: ServiceOptions, log: Log) {
        let log = Log(level: LogLevel(name: logLevel) ?? .info)
        let program: Program
        do throws(DiagnosticReport) {
            program = try Compiler.build(rules: rules, config: config)
        } catch {
            FileHandle.standardError.write(Data((error.description + "\n").utf8))
            throw ExitCode(1)
        }
        let options = ServiceOptions(rules: rules, config: config, internalURL: internalURL, centralURL: centralURL,
                                     logLevel: log.level)
        return (program, options, log)
    }
}
