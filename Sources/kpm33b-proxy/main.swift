import ArgumentParser
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
            and the config; SIGTERM delivers what it can within seconds and stops; the journal in --state-dir keeps the rest for the next start.
            """,
        version: ServiceVersion.current)

    @OptionGroup var service: ServiceArguments

    @Option(help: ArgumentHelp("Where the journal of messages not yet acknowledged by the central broker is kept (created if missing).",
                               valueName: "DIR"))
    var stateDir: String = "/var/lib/kpm33b-proxy"

    func run() throws {
        let (site, options, log) = try service.start()
        let proxy: ProxyService
        do throws(ServiceError) {
            proxy = try ProxyService(site: site, configuration: .init(service: options, stateDirectory: stateDir), log: log)
        } catch {
            log.error("cannot start", ["error": error.message])
            throw ExitCode(1)
        }
        let status = proxy.run()
        if status != 0 { throw ExitCode(status) }
    }
}

ProxyCommand.main()
