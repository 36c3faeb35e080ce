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
            waits for replies still expected, saves the state and stops. `config-sender show [ID] \
            --state-dir DIR [--json]` prints what the state database says.
            """,
        version: ServiceVersion.current)

    @OptionGroup var service: ServiceArguments

    @Option(help: ArgumentHelp("Where the state file is kept (created if missing).", valueName: "DIR"))
    var stateDir: String

    func run() throws {
        let (site, options, log) = try service.start()
        let sender: ConfigSenderService
        do throws(ServiceError) {
            sender = try ConfigSenderService(
                site: site,
                configuration: .init(service: options, stateDirectory: site.program.stateDirectory(stateDir)),
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

/// `config-sender show [ID]`: what the state database says.
struct ConfigSenderShowCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "config-sender show",
        abstract: "Print what config-sender's state database says: every meter, or one meter's commands.",
        discussion: "Reads beside a running config-sender and writes nothing. Exit status 1: no such meter; 2: no readable database.")

    @Option(help: ArgumentHelp("The state directory (the one holding config-sender.db).", valueName: "DIR"))
    var stateDir: String

    @Flag(help: "One JSON object per meter and line instead of a table.")
    var json = false

    @Argument(help: "A meter id (default: every meter, one line each).")
    var id: String?

    func run() throws {
        do throws(StateShow.Failure) {
            print(try StateShow.configSender(stateDirectory: stateDir, id: id, json: json), terminator: "")
        } catch {
            let line = Array("config-sender show: \(error.message)\n".utf8)
            _ = write(2, line, line.count)
            throw ExitCode(error.status)
        }
    }
}

if CommandLine.arguments.dropFirst().first == "show" {
    ConfigSenderShowCommand.main(Array(CommandLine.arguments.dropFirst(2)))
} else {
    ConfigSenderCommand.main()
}
