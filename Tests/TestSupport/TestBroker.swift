import Foundation
import Glibc
import MQTT

/// A real Mosquitto broker for one test: its own temporary directory, a
/// generated configuration and a free port on 127.0.0.1.
///
/// `init` returns once the port accepts connections. `stop()` (also run by
/// `deinit`) ends the process by PID — SIGTERM, then SIGKILL after a timeout —
/// and removes the directory. `kill()` and `terminate()` end the process but
/// keep the directory, so `restart()` brings the broker back on the same port
/// with the same persistence database.
public final class TestBroker: @unchecked Sendable {
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

        public init(persistence: Bool = false, users: [String: String] = [:], acl: [String]? = nil,
                    extraLines: [String] = []) {
            self.persistence = persistence
            self.users = users
            self.acl = acl
            self.extraLines = extraLines
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

    private let lock = NSLock()
    private var process: ChildProcess?
    private var removed = false

    /// 127.0.0.1 and the broker's port, without TLS.
    public var endpoint: MQTTEndpoint { MQTTEndpoint(host: "127.0.0.1", port: port, tls: false) }
    /// `mqtt://127.0.0.1:PORT`.
    public var url: String { "mqtt://127.0.0.1:\(port)" }
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
        if !configuration.users.isEmpty {
            let file = directory.appendingPathComponent("passwd")
            _ = FileManager.default.createFile(atPath: file.path, contents: Data())
            for (user, password) in configuration.users.sorted(by: { $0.key < $1.key }) {
                try Self.run(Self.findTool("mosquitto_passwd"), ["-b", file.path, user, password])
            }
        }
        if let acl = configuration.acl {
            try (acl.joined(separator: "\n") + "\n")
                .write(to: directory.appendingPathComponent("acl"), atomically: true, encoding: .utf8)
        }
    }

    private func configText() -> String {
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
            if Sockets.accepts(port: port) { return }
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
    static func run(_ tool: String, _ arguments: [String]) throws {
        let process = try ChildProcess(executable: tool, arguments: arguments)
        process.wait(timeout: 30)
        guard process.exitStatus == 0 else {
            throw Failure.setup("\(tool) \(arguments.first ?? "") exited with \(process.exitStatus ?? -1)")
        }
    }
}
