import Foundation
import Glibc
import MQTT

/// A real Mosquitto broker for one test: its own temporary directory, a
/// generated configuration (or a shipped production one, `Shipped`) and a free
/// port on 127.0.0.1.
///
/// `init` returns once the port accepts connections. `stop()` (also run by
/// `deinit`) ends the process by PID — SIGTERM, then SIGKILL after a timeout —
/// and removes the directory. `kill()` and `terminate()` end the process but
/// keep the directory, so `restart()` brings the broker back on the same port
/// with the same persistence database.
public final class TestBroker: @unchecked Sendable {
    /// A production configuration of this repository, changed only where a
    /// test must: `broker/internal/mosquitto.conf` or
    /// `broker/central/mosquitto-production.conf` with a copy of its ACL and
    /// throwaway accounts made by `tools/broker-accounts` (`--central` for the
    /// central broker); the listener on 127.0.0.1 and a free port, the files
    /// in the broker's directory, run as this user. With `tls`, the config's
    /// commented TLS listener is enabled too, on a second free port
    /// (`tlsPort`), with the test's certificate and key.
    public struct Shipped: Sendable {
        public enum Broker: Sendable { case `internal`, central }
        public var broker: Broker
        /// Internal: meter ids to make accounts for; central: extra accounts (operator, viewer).
        public var accounts: [String]
        /// Internal: every meter's password (one, so that one meter-sim
        /// process with `--password-env` serves them all).
        public var meterPassword: String
        public var tls: TestCertificates?

        public init(_ broker: Broker, accounts: [String] = [], meterPassword: String = "meter-\(UUID().uuidString.prefix(8))",
                    tls: TestCertificates? = nil) {
            self.broker = broker
            self.accounts = accounts
            self.meterPassword = meterPassword
            self.tls = tls
        }

        var configFile: String {
            broker == .internal ? "broker/internal/mosquitto.conf" : "broker/central/mosquitto-production.conf"
        }
        var aclFile: String { broker == .internal ? "broker/internal/acl" : "broker/central/acl" }
    }

    /// What the broker's configuration says beyond the listener.
    public struct Configuration: Sendable {
        /// Keep sessions and queued messages in `directory/data/` across restarts.
        public var persistence: Bool
        /// `username: password` pairs; when given, a password file is made with
        /// `mosquitto_passwd -b` and anonymous clients are refused.
        public var users: [String: String]
        /// Lines of an ACL file (`user NAME`, `topic readwrite X`, `pattern ...`).
        public var acl: [String]?
        /// Extra configuration lines; `{dir}` is replaced by the broker's directory.
        public var extraLines: [String]
        /// Run a production configuration instead (`users`, `acl` and
        /// `persistence` are then the shipped ones; `extraLines` still apply).
        public var shipped: Shipped?

        public init(persistence: Bool = false, users: [String: String] = [:], acl: [String]? = nil,
                    extraLines: [String] = [], shipped: Shipped? = nil) {
            self.persistence = persistence
            self.users = users
            self.acl = acl
            self.extraLines = extraLines
            self.shipped = shipped
        }
    }

    public enum Failure: Error, CustomStringConvertible {
        case toolNotFound(String)
        case setup(String)
        case didNotStart(port: Int, log: String)

        public var description: String {
            switch self {
            case .toolNotFound(let name): return "\(name) not found on PATH, /usr/sbin or /usr/local/sbin"
            case .setup(let why): return "test broker setup: \(why)"
            case .didNotStart(let port, let log): return "mosquitto did not start on port \(port):\n\(log)"
            }
        }
    }

    public let configuration: Configuration
    /// The broker's own temporary directory (config, log, password file, data).
    public let directory: URL
    public private(set) var port: Int
    /// The TLS listener's port (`Shipped.tls`), else nil.
    public private(set) var tlsPort: Int?

    private let lock = NSLock()
    private var process: ChildProcess?
    private var removed = false

    /// 127.0.0.1 and the broker's port, without TLS.
    public var endpoint: MQTTEndpoint { MQTTEndpoint(host: "127.0.0.1", port: port, tls: false) }
    /// `mqtt://127.0.0.1:PORT`.
    public var url: String { "mqtt://127.0.0.1:\(port)" }
    /// `mqtts://127.0.0.1:TLSPORT` (`Shipped.tls`).
    public var tlsURL: String? { tlsPort.map { "mqtts://127.0.0.1:\($0)" } }

    /// The password `tools/broker-accounts` gave `user` (`Shipped`), from its credential file.
    public func password(_ user: String) -> String {
        (try? String(contentsOf: directory.appendingPathComponent("credentials/\(user)"), encoding: .utf8)) ?? ""
    }
    /// The broker's PID, or nil when it is not running.
    public var pid: Int32? {
        lock.withLock { process.flatMap { $0.isRunning ? $0.pid : nil } }
    }
    public var isRunning: Bool { pid != nil }
    /// Everything the broker logged so far (all runs).
    public var log: String {
        (try? String(contentsOf: directory.appendingPathComponent("mosquitto.log"), encoding: .utf8)) ?? ""
    }

    public init(_ configuration: Configuration = Configuration()) throws {
        self.configuration = configuration
        directory = FileManager.default.temporaryDirectory
            .appendingPathComponent("test-broker-\(UUID().uuidString.prefix(8))")
        port = 0
        do {
            try FileManager.default.createDirectory(at: directory.appendingPathComponent("data"),
                                                    withIntermediateDirectories: true)
            try writeAuxiliaryFiles()
            // A port that was free a moment ago can be taken by someone else
            // before mosquitto binds it: try a few.
            var lastError: Error = Failure.setup("no free port")
            for _ in 0..<5 {
                port = freePort()
                if configuration.shipped?.tls != nil { tlsPort = freePort() }
                do {
                    try launch()
                    return
                } catch {
                    lastError = error
                }
            }
            throw lastError
        } catch {
            try? FileManager.default.removeItem(at: directory)
            throw error
        }
    }

    /// Convenience: `TestBroker(persistence: true)`.
    public convenience init(persistence: Bool, users: [String: String] = [:], extraLines: [String] = []) throws {
        try self.init(Configuration(persistence: persistence, users: users, extraLines: extraLines))
    }

    deinit { stop() }

    /// Ends the broker (SIGTERM, SIGKILL after `timeout`) and removes its
    /// directory. Idempotent.
    public func stop(timeout: Double = 5) {
        terminate(timeout: timeout)
        lock.withLock {
            if !removed {
                removed = true
                try? FileManager.default.removeItem(at: directory)
            }
        }
    }

    /// SIGTERM and wait (SIGKILL after `timeout`); a persistent broker saves
    /// its database. The directory stays, for `restart()`.
    public func terminate(timeout: Double = 5) {
        guard let process = lock.withLock({ self.process }) else { return }
        process.terminate(timeout: timeout)
        lock.withLock { self.process = nil }
    }

    /// SIGKILL: the broker vanishes without saving or closing anything cleanly.
    public func kill() {
        guard let process = lock.withLock({ self.process }) else { return }
        process.kill()
        lock.withLock { self.process = nil }
    }

    /// Stops the broker if it runs (SIGTERM) and starts it again on the same
    /// port with the same directory.
    public func restart() throws {
        terminate()
        try launch()
    }

    // MARK: Private

    private var configFile: URL { directory.appendingPathComponent("mosquitto.conf") }

    private func writeAuxiliaryFiles() throws {
        if let shipped = configuration.shipped { return try makeAccounts(shipped) }
        if !configuration.users.isEmpty {
            let file = directory.appendingPathComponent("passwd")
            _ = FileManager.default.createFile(atPath: file.path, contents: Data())
            // The password on mosquitto_passwd's standard input (asked twice), never on its command line.
            let input = directory.appendingPathComponent("passwd.input")
            defer { try? FileManager.default.removeItem(at: input) }
            for (user, password) in configuration.users.sorted(by: { $0.key < $1.key }) {
                try "\(password)\n\(password)\n".write(to: input, atomically: true, encoding: .utf8)
                try Self.run(Self.findTool("mosquitto_passwd"), [file.path, user], input: input.path)
            }
        }
        if let acl = configuration.acl {
            try (acl.joined(separator: "\n") + "\n")
                .write(to: directory.appendingPathComponent("acl"), atomically: true, encoding: .utf8)
        }
    }

    /// The shipped ACL and accounts from `tools/broker-accounts`, as an operator makes them.
    private func makeAccounts(_ shipped: Shipped) throws {
        let root = URL(fileURLWithPath: Repository.root)
        let acl = directory.appendingPathComponent("acl")
        try FileManager.default.copyItem(at: root.appendingPathComponent(shipped.aclFile), to: acl)
        var arguments = ["--password-file", directory.appendingPathComponent("passwd").path,
                         "--credentials-dir", directory.appendingPathComponent("credentials").path, "--acl-file", acl.path]
        var environment: [String: String?] = [:]
        if shipped.broker == .central {
            arguments.insert("--central", at: 0)
        } else {
            for id in shipped.accounts { environment["KPM33B_METER_PASSWORD_\(id.suffix(8))"] = shipped.meterPassword }
        }
        let log = directory.appendingPathComponent("broker-accounts.log")
        if shipped.broker == .internal {
            // The meters' rights: the plugin, built (if its source changed) where the config's line will point.
            let build = try ChildProcess(executable: root.appendingPathComponent("tools/build-meter-acl").path,
                                         arguments: ["--out", Self.meterACLPlugin], outputFile: log.path)
            build.wait(timeout: 120)
            guard build.exitStatus == 0 else {
                throw Failure.setup("tools/build-meter-acl failed: \((try? String(contentsOf: log, encoding: .utf8)) ?? "")")
            }
        }
        let tool = try ChildProcess(executable: root.appendingPathComponent("tools/broker-accounts").path,
                                    arguments: arguments + shipped.accounts, environment: environment, outputFile: log.path)
        tool.wait(timeout: 60)
        guard tool.exitStatus == 0 else {
            throw Failure.setup("tools/broker-accounts failed: \((try? String(contentsOf: log, encoding: .utf8)) ?? "")")
        }
    }

    /// Where `tools/build-meter-acl` puts the meter ACL plugin (its default).
    static var meterACLPlugin: String { Repository.root + "/.build/broker/kpm33b-meter-acl.so" }

    /// The shipped config with the listener, the file paths, the plugin and the user
    /// replaced; throws unless each replacement hit (the config changed under
    /// the tests) and no other listener stays open.
    private func shippedConfigText(_ shipped: Shipped) throws -> String {
        let root = URL(fileURLWithPath: Repository.root)
        let text = try String(contentsOf: root.appendingPathComponent(shipped.configFile), encoding: .utf8)
        let me = geteuid() == 0 ? "root" : (getpwuid(geteuid()).map { String(cString: $0.pointee.pw_name) } ?? "nobody")
        var hits: [String: Int] = [:]
        var out = ["# Generated by TestSupport.TestBroker from \(shipped.configFile)"]
        var inTLSBlock = false
        func replace(_ key: String, _ line: String) { hits[key, default: 0] += 1; out.append(line) }
        for line in text.split(separator: "\n", omittingEmptySubsequences: false).map(String.init) {
            let words = line.split(separator: " ").map(String.init)
            guard let first = words.first else { inTLSBlock = false; out.append(line); continue }
            switch first {
            case "listener": inTLSBlock = false; replace("listener", "listener \(port) 127.0.0.1")
            case "user": replace("user", "user \(me)")
            case "password_file": replace("password_file", "password_file \(directory.appendingPathComponent("passwd").path)")
            case "acl_file": replace("acl_file", "acl_file \(directory.appendingPathComponent("acl").path)")
            case "plugin": replace("plugin", "plugin \(Self.meterACLPlugin)")
            case "plugin_opt_password_file":
                replace("plugin_opt_password_file", "plugin_opt_password_file \(directory.appendingPathComponent("passwd").path)")
            case "persistence_location":
                replace("persistence_location", "persistence_location \(directory.appendingPathComponent("data").path)/")
            case "#listener" where words.count == 2 && ["8883", "18883"].contains(words[1]):
                guard shipped.tls != nil, let tlsPort else { out.append(line); continue }
                inTLSBlock = true
                replace("tls listener", "listener \(tlsPort) 127.0.0.1")
            case "#protocol" where inTLSBlock: replace("tls protocol", String(line.dropFirst()))
            case "#certfile" where inTLSBlock: replace("certfile", "certfile \(shipped.tls?.serverCertFile ?? "")")
            case "#keyfile" where inTLSBlock: replace("keyfile", "keyfile \(shipped.tls?.serverKeyFile ?? "")")
            case "#tls_version" where inTLSBlock: replace("tls_version", String(line.dropFirst()))
            default:
                if !line.hasPrefix("#") { inTLSBlock = false }  // the snippet ends at its first uncommented line
                out.append(line)
            }
        }
        if hits["user"] == nil { replace("user", "user \(me)") }  // the central config names none
        var expected = ["listener": 1, "user": 1, "password_file": 1, "acl_file": 1, "persistence_location": 1]
        if shipped.broker == .internal { expected.merge(["plugin": 1, "plugin_opt_password_file": 1]) { $1 } }
        if shipped.tls != nil {
            expected.merge(["tls listener": 1, "tls protocol": 1, "certfile": 1, "keyfile": 1, "tls_version": 1]) { $1 }
        }
        guard hits == expected else {
            throw Failure.setup("\(shipped.configFile) no longer has the lines the tests replace: \(hits.sorted { $0.key < $1.key }) instead of \(expected.sorted { $0.key < $1.key })")
        }
        out += configuration.extraLines.map { $0.replacingOccurrences(of: "{dir}", with: directory.path) }
        return out.joined(separator: "\n") + "\n"
    }

    private func configText() throws -> String {
        if let shipped = configuration.shipped { return try shippedConfigText(shipped) }
        var lines = ["# Generated by TestSupport.TestBroker"]
        if geteuid() == 0 {
            lines.append("user root")  // otherwise mosquitto drops to 'mosquitto' and cannot write here
        }
        lines += [
            "listener \(port) 127.0.0.1",
            "allow_anonymous \(configuration.users.isEmpty)",
            "log_dest stderr",
            "log_type error",
            "log_type warning",
            "log_type notice",
            "log_type information",
            "connection_messages true",
            "log_timestamp true",
            // As the production internal broker: send small packets at once, and
            // queue up to 100,000 QoS 1 messages for a slow or absent session
            // (Mosquitto's default of 1,000 drops a busy machine's backlog).
            "set_tcp_nodelay true",
            "max_queued_messages 100000",
        ]
        if !configuration.users.isEmpty {
            lines.append("password_file \(directory.appendingPathComponent("passwd").path)")
        }
        if configuration.acl != nil {
            lines.append("acl_file \(directory.appendingPathComponent("acl").path)")
        }
        if configuration.persistence {
            lines += ["persistence true",
                      "persistence_location \(directory.appendingPathComponent("data").path)/",
                      "autosave_interval 1"]
        } else {
            lines.append("persistence false")
        }
        lines += configuration.extraLines.map { $0.replacingOccurrences(of: "{dir}", with: directory.path) }
        return lines.joined(separator: "\n") + "\n"
    }

    /// Starts mosquitto on `port` and waits until the port accepts connections.
    private func launch() throws {
        try configText().write(to: configFile, atomically: true, encoding: .utf8)
        let process = try ChildProcess(executable: try Self.findTool("mosquitto"),
                                       arguments: ["-c", configFile.path],
                                       outputFile: directory.appendingPathComponent("mosquitto.log").path)
        lock.withLock { self.process = process }

        let deadline = Date(timeIntervalSinceNow: 10)
        while Date() < deadline {
            if !process.isRunning { break }
            if Sockets.accepts(port: port) && (tlsPort.map { Sockets.accepts(port: $0) } ?? true) { return }
            usleep(10_000)
        }
        kill()
        throw Failure.didNotStart(port: port, log: log)
    }

    /// The path of a Mosquitto tool: `$PATH`, then the usual sbin folders
    /// (Debian installs the broker in /usr/sbin, outside a normal user's PATH).
    public static func findTool(_ name: String) throws -> String {
        let path = ProcessInfo.processInfo.environment["PATH"] ?? ""
        let folders = path.split(separator: ":").map(String.init)
            + ["/usr/sbin", "/usr/local/sbin", "/usr/bin", "/usr/local/bin", "/opt/homebrew/sbin"]
        for folder in folders {
            let candidate = (folder as NSString).appendingPathComponent(name)
            if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
        }
        throw Failure.toolNotFound(name)
    }

    /// Runs a tool to completion; throws on a non-zero exit.
    static func run(_ tool: String, _ arguments: [String], input: String? = nil) throws {
        let process = try ChildProcess(executable: tool, arguments: arguments, inputFile: input)
        process.wait(timeout: 30)
        guard process.exitStatus == 0 else {
            throw Failure.setup("\(tool) \(arguments.first ?? "") exited with \(process.exitStatus ?? -1)")
        }
    }
}
