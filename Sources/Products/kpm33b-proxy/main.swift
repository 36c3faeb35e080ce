import ArgumentParser
#if canImport(Glibc)
import Glibc
#endif
import RuleEngine
import Services

/// `kpm33b-proxy`: forwards clean meter readings from the meters' broker to
/// the site's central broker, with discovery and Home Assistant configs.
/// `run` is the service (and the default); `retire` and `accept-reset` are
/// an operator's commands beside it.
struct ProxyCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "kpm33b-proxy",
        abstract: "Forward clean KPM33B meter readings from the meters' broker to the central broker.",
        version: ServiceVersion.current,
        subcommands: [Run.self, Retire.self, AcceptReset.self, DeadLettersCommand.self, Show.self],
        defaultSubcommand: Run.self)
}

/// Where the proxy keeps its journal and counters; shared by the commands.
struct StateDirectory: ParsableArguments {
    @Option(help: ArgumentHelp("The proxy's state: the journal of messages not yet acknowledged by the central broker "
                               + "and the energy counters (created if missing).", valueName: "DIR"))
    var stateDir: String = "/var/lib/kpm33b-proxy"
}

struct Run: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run the proxy (the default command).",
        discussion: """
            Passwords are never given on the command line: see password_credential, \
            password_file and password_env in the site config. SIGHUP reloads the rules \
            and the config; SIGTERM delivers what it can within seconds and stops; the \
            journal in --state-dir keeps the rest for the next start.
            """)

    @OptionGroup var service: ServiceArguments
    @OptionGroup var state: StateDirectory

    func run() throws {
        let (site, options, log) = try service.start()
        let proxy: ProxyService
        do throws(ServiceError) {
            proxy = try ProxyService(site: site, configuration: .init(service: options, stateDirectory: site.program.stateDirectory(state.stateDir)), log: log)
        } catch {
            log.error("cannot_start", ["error": error.message])
            throw ExitCode(1)
        }
        let status = proxy.run()
        log.flush()
        if status != 0 { throw ExitCode(status) }
    }
}

struct Retire: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Clear every retained message of these meters: discovery (both brokers) and Home Assistant entities.",
        discussion: """
            For a meter taken off the site. Add it to 'exclude' in the site config first \
            (and reload), or the proxy announces it again with its next reading. Uses the \
            proxy's broker settings and credentials, with client ids ending in -retire.
            """)

    @OptionGroup var service: ServiceArguments

    @Argument(help: "Meter ids.")
    var ids: [String]

    func run() throws {
        let (site, options, log) = try service.start()
        let status = ProxyRetire.run(ids: ids, site: site, options: options, log: log)
        if status != 0 { throw ExitCode(status) }
    }
}

struct AcceptReset: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "accept-reset",
        abstract: "Accept a meter's counter reset that the counter guard keeps refusing (a replaced meter).",
        discussion: """
            The proxy forgets what it forwarded for the counter (every guarded counter of \
            the meter when FIELD is not given) within a second, or at its next start, and \
            takes the meter's next reading as the new start.
            """)

    @OptionGroup var service: ServiceArguments
    @OptionGroup var state: StateDirectory

    @Argument(help: "The meter id.")
    var id: String

    @Argument(help: "A guarded field, e.g. active_energy (default: all of the meter's).")
    var field: String?

    func run() throws {
        let (site, _, log) = try service.start()
        let program = site.programs
        guard program.isValidDeviceID(id) else {
            log.error("accept_reset_refused", ["meter": id, "detail": "not a meter id of pack '\(program.packName)'"])
            throw ExitCode(64)
        }
        let guarded = PackRouter(programs: program, origin: Origin(name: "kpm33b-proxy", version: ServiceVersion.current)).engine(for: id)?.guardedFieldNames ?? []
        if let field, !guarded.contains(field) {
            log.error("accept_reset_refused", ["field": field, "detail": "not a guarded field; the pack guards \(guarded.joined(separator: ", "))"])
            throw ExitCode(64)
        }
        do throws(ServiceError) {
            try CounterResetRequests(stateDirectory: state.stateDir, instance: program.instance).request(id: id, field: field)
        } catch {
            log.error("accept_reset_failed", ["error": error.message])
            throw ExitCode(1)
        }
        log.info("accept_reset_requested", ["meter": id, "field": field ?? "(all)", "state_dir": program.stateDirectory(state.stateDir),
                                            "detail": "the proxy takes it within a second, or at its next start"])
    }
}

ProxyCommand.main()

struct Show: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Print what the proxy's counters database says: each guarded counter's last forwarded value.",
        discussion: "Reads beside a running proxy and writes nothing. Exit status 1: no such meter; 2: no readable database.")

    @OptionGroup var state: StateDirectory

    @Flag(help: "One JSON object per meter and line instead of a table.")
    var json = false

    @Argument(help: "A meter id (default: every meter).")
    var id: String?

    func run() throws {
        do throws(StateShow.Failure) {
            print(try StateShow.proxy(stateDirectory: state.stateDir, id: id, json: json), terminator: "")
        } catch {
            let line = Array("kpm33b-proxy show: \(error.message)\n".utf8)
            _ = write(2, line, line.count)
            throw ExitCode(error.status)
        }
    }
}

struct DeadLettersCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "dead-letters",
        abstract: "What the central broker refused for good (not authorized, topic name invalid, …): list, replay or discard it.",
        discussion: """
            A record the central broker refuses with a reason that sending again cannot change \
            leaves the journal for the dead-letter file in the state directory, and the proxy's \
            status and health device say so. Fix the broker (its ACL, its limits), then replay: \
            what it acknowledges leaves the file, what it refuses again stays. Runs beside a \
            running proxy, with the client id of the proxy ending in -dead-letters.
            """)

    enum Action: String, ExpressibleByArgument, CaseIterable { case list, replay, discard }

    @OptionGroup var service: ServiceArguments
    @OptionGroup var state: StateDirectory

    @Argument(help: "list | replay | discard")
    var action: Action

    func run() throws {
        let (site, options, log) = try service.start()
        let directory = site.program.stateDirectory(state.stateDir)
        let status = switch action {
        case .list: ProxyDeadLetters.list(stateDirectory: directory, log: log)
        case .replay: ProxyDeadLetters.replay(site: site, options: options, stateDirectory: directory, log: log)
        case .discard: ProxyDeadLetters.discard(stateDirectory: directory, log: log)
        }
        log.flush()
        if status != 0 { throw ExitCode(status) }
    }
}
