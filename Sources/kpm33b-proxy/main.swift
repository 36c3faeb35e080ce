import ArgumentParser
import Foundation
import RuleEngine
import Services

/// `kpm33b-proxy`: forwards clean meter readings from the meters' broker to
/// the site's central broker, with discovery and Home Assistant configs.
struct ProxyCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "kpm33b-proxy",
        abstract: "Forward clean KPM33B meter readings from the meters' broker to the central broker.",
        discussion: """
            Passwords are never given on the command line: see password_credential, \
            password_file and password_env in the site config. SIGHUP reloads the rules \
            and the config; SIGTERM drains and stops.
            """,
        version: ServiceVersion.current)

    @Option(help: "The rule pack directory (or its pack.yaml).")
    var rules: String = "rules/kpm33b"

    @Option(help: "The site config file.")
    var config: String = "config/config.yaml"

    @Option(name: .customLong("internal"), help: ArgumentHelp("The meters' broker, overriding the config.", valueName: "mqtt://HOST:PORT"))
    var internalURL: String?

    @Option(name: .customLong("central"), help: ArgumentHelp("The central broker, overriding the config.", valueName: "mqtt://HOST:PORT"))
    var centralURL: String?

    @Option(help: "debug, info, warning or error.")
    var logLevel: String = "info"

    func validate() throws {
        guard LogLevel(name: logLevel) != nil else {
            throw ValidationError("unknown log level '\(logLevel)' (use debug, info, warning or error)")
        }
    }

    func run() throws {
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
        let service: ProxyService
        do throws(ServiceError) {
            service = try ProxyService(program: program, options: options, log: log)
        } catch {
            log.error("cannot start", ["error": error.message])
            throw ExitCode(1)
        }
        let status = service.run()
        if status != 0 { throw ExitCode(status) }
    }
}

ProxyCommand.main()
