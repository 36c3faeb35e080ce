#if canImport(Glibc)
import Glibc
#endif

/// systemd's notify protocol without libsystemd: each message is one
/// datagram of `KEY=VALUE` lines to the `AF_UNIX` socket named by
/// `$NOTIFY_SOCKET` (a path, or an abstract name written with a leading `@`).
///
/// systemd sets the variable for a `Type=notify` unit (and `NotifyAccess=main`
/// takes messages from the main process only); elsewhere it is unset and
/// `init` returns nil, so the services run the same with or without systemd.
/// A datagram that cannot be sent (systemd restarting) is dropped: sending
/// never blocks (`MSG_DONTWAIT`).
/// Only constants; `sendto` is thread-safe.
public final class SystemdNotifier: Sendable {
    /// Owned; closed in `deinit`.
    private let fd: Int32
    private let address: sockaddr_un
    private let addressLength: socklen_t
    /// Half of `$WATCHDOG_USEC`, in seconds: how often `WATCHDOG=1` is due;
    /// nil when systemd watches no deadline (or watches another process).
    public let watchdogInterval: Double?

    /// Nil when `$NOTIFY_SOCKET` is unset, empty, not a usable socket address,
    /// or the socket cannot be made.
    public init?(environment: [String: String]) {
        guard let path = environment["NOTIFY_SOCKET"], !path.isEmpty else { return nil }
        let abstract = path.hasPrefix("@")
        guard abstract || path.hasPrefix("/") else { return nil }
        var bytes = Array(path.utf8)
        if abstract { bytes[0] = 0 }
        var address = sockaddr_un()
        guard bytes.count < MemoryLayout.size(ofValue: address.sun_path) else { return nil }
        address.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            raw.copyBytes(from: bytes)
        }
        self.address = address
        // An abstract name is exactly its bytes; a path ends at its NUL.
        let pathOffset = MemoryLayout<sockaddr_un>.offset(of: \.sun_path)!
        addressLength = socklen_t(pathOffset + bytes.count + (abstract ? 0 : 1))
        fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { return nil }
        watchdogInterval = Self.watchdogInterval(environment)
    }

    deinit {
        close(fd)
    }

    /// `$WATCHDOG_USEC` / 2 in seconds, unless `$WATCHDOG_PID` names another process.
    static func watchdogInterval(_ environment: [String: String]) -> Double? {
        guard let text = environment["WATCHDOG_USEC"], let usec = UInt64(text), usec > 0 else { return nil }
        if let pid = environment["WATCHDOG_PID"].flatMap({ Int32($0) }), pid != getpid() { return nil }
        return Double(usec) / 2_000_000
    }

    /// Sends one message: lines of `KEY=VALUE`. True when the datagram left.
    @discardableResult
    public func send(_ fields: [(key: String, value: String)]) -> Bool {
        let text = fields.map { "\($0.key)=\(Self.oneLine($0.value))" }.joined(separator: "\n")
        let sent = withUnsafePointer(to: address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { sa in
                Array(text.utf8).withUnsafeBytes { buffer in
                    sendto(fd, buffer.baseAddress, buffer.count, Int32(MSG_DONTWAIT | MSG_NOSIGNAL), sa, addressLength)
                }
            }
        }
        return sent >= 0
    }

    /// A value never starts a second line (which would be a field of its own).
    static func oneLine(_ value: String) -> String {
        String(value.map { $0 == "\n" || $0 == "\r" ? " " : $0 })
    }
}
