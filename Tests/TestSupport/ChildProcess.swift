import Foundation
import Glibc

/// A child process started with `posix_spawn`, signals unblocked.
///
/// Foundation's `Process` passes on the calling thread's signal mask, and the
/// threads tests run on (libdispatch workers) block SIGTERM, SIGINT and SIGHUP;
/// Mosquitto only restores the mask it inherited, so a broker started that way
/// ignores SIGTERM. This spawns with an empty mask and default dispositions,
/// so `terminate()` behaves as it does from a shell.
public final class ChildProcess: @unchecked Sendable {
    public let pid: pid_t
    public let executable: String
    private let lock = NSLock()
    private var status: Int32?

    /// Starts `executable` with `arguments`. The child's standard output and
    /// error are appended to `outputFile` (or discarded when nil); standard
    /// input is `inputFile` (default /dev/null). `environment` entries are
    /// added to this process's environment (a nil value removes a variable).
    public init(executable: String, arguments: [String], environment: [String: String?] = [:],
                outputFile: String? = nil, inputFile: String? = nil) throws {
        self.executable = executable
        var fileActions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&fileActions)
        defer { posix_spawn_file_actions_destroy(&fileActions) }
        posix_spawn_file_actions_addopen(&fileActions, 0, inputFile ?? "/dev/null", O_RDONLY, 0)
        let output = outputFile ?? "/dev/null"
        posix_spawn_file_actions_addopen(&fileActions, 1, output, O_WRONLY | O_CREAT | O_APPEND, 0o644)
        posix_spawn_file_actions_adddup2(&fileActions, 1, 2)

        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var empty = sigset_t()
        sigemptyset(&empty)
        posix_spawnattr_setsigmask(&attributes, &empty)
        var defaults = sigset_t()
        sigemptyset(&defaults)
        for signal in [SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGPIPE, SIGUSR1, SIGUSR2, SIGCHLD] {
            sigaddset(&defaults, signal)
        }
        posix_spawnattr_setsigdefault(&attributes, &defaults)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))

        var env = ProcessInfo.processInfo.environment
        for (key, value) in environment { env[key] = value }
        let argv = ([executable] + arguments).map { strdup($0) } + [nil]
        let envp = env.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer {
            argv.forEach { free($0) }
            envp.forEach { free($0) }
        }
        var child: pid_t = 0
        let rc = posix_spawn(&child, executable, &fileActions, &attributes, argv, envp)
        guard rc == 0 else {
            throw TestBroker.Failure.setup("cannot start \(executable): \(String(cString: strerror(rc)))")
        }
        pid = child
    }

    deinit { kill() }

    /// Whether the child has not exited yet (reaps it when it has).
    public var isRunning: Bool { exitStatus == nil }

    /// The exit code, or 128 + signal number if a signal ended it; nil while running.
    public var exitStatus: Int32? {
        lock.withLock {
            if status == nil {
                var raw: Int32 = 0
                if waitpid(pid, &raw, WNOHANG) == pid { status = Self.decode(raw) }
            }
            return status
        }
    }

    public func signal(_ signal: Int32) {
        if isRunning { Glibc.kill(pid, signal) }
    }

    /// Waits up to `timeout` seconds for the child to exit; true if it did.
    @discardableResult
    public func wait(timeout: Double) -> Bool {
        let deadline = Date(timeIntervalSinceNow: timeout)
        while isRunning {
            if Date() >= deadline { return false }
            usleep(5_000)
        }
        return true
    }

    /// SIGTERM, then SIGKILL if it has not exited after `timeout` seconds.
    public func terminate(timeout: Double = 5) {
        signal(SIGTERM)
        if !wait(timeout: timeout) { kill() }
    }

    /// SIGKILL and reap.
    public func kill() {
        signal(SIGKILL)
        wait(timeout: 10)
    }

    private static func decode(_ raw: Int32) -> Int32 {
        let signal = raw & 0x7f
        return signal == 0 ? (raw >> 8) & 0xff : 128 + signal
    }
}
