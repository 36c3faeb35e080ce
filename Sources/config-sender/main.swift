import ArgumentParser
#if canImport(Glibc)
import Glibc
#endif
import RuleEngine
import Services

/// `config-sender`: configures every discovered meter once a day or when its
/// configuration changes, and verifies each acknowledgement.
struct ConfigSenderCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "config-sender",
        abstract: "Send each KPM33B meter its upload intervals and clock once a day or on change, and check the replies.",
        discussion: """
            Meters are learnt from the discovery messages on the central broker; commands and \
            replies go through the meters' broker. Passwords are never given on the command line: \
            see password_credential, password_file and password_env in the site config. SIGHUP \
            reloads the rules and the config (an edit takes effect then, not before); SIGTERM \
            waits for replies still expected, saves the state and stops.
            """,
        version: ServiceVersion.current)

    /// Testing only: shifts the service's notion of "today" (not the clock it sends).
    static let dayOffsetVariable = "KPM33B_CONFIG_SENDER_DAY_OFFSET"

    @OptionGroup var service: ServiceArguments

    @Option(help: ArgumentHelp("Where the state file is kept (created if missing).", valueName: "DIR"))
    var stateDir: String

    @Option(help: .hidden)
    var todayOffsetDays: Int?

    func validate() throws {
        if todayOffsetDays == nil, let text = getenv(Self.dayOffsetVariable).map({ String(cString: $0) }), Int(text) == nil {
            throw ValidationError("\(Self.dayOffsetVariable) must be a whole number of days")
        }
    }

    func run() throws {
        let (site, options, log) = try service.start()
        let dayOffset = todayOffsetDays ?? getenv(Self.dayOffsetVariable).flatMap { Int(String(cString: $0)) } ?? 0
        let sender: ConfigSenderService
        do throws(ServiceError) {
            sender = try ConfigSenderService(
                site: site,
                configuration: .init(service: options, stateDirectory: site.program.stateDirectory(stateDir), dayOffset: dayOffset),
                log: log)
        } catch {
            log.error("cannot_start", ["error": error.message])
            throw ExitCode(1)
        }
        let status = sender.run()
        log.flush()
        if status != 0 { throw ExitCode(status) }
    }
}

ConfigSenderCommand.main()
