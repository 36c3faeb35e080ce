import Foundation
import Glibc

/// What systemd listens on for a `Type=notify` service: an `AF_UNIX`
/// datagram socket at `path` (pass it as `NOTIFY_SOCKET`). Keeps every
/// message received, in order.
public final class NotifySocket: @unchecked Sendable {
    /// The socket file; empty for an abstract name.
    public let path: String
    private let fd: Int32
    private let lock = NSLock()
    private var received: [String] = []

    /// A socket file `notify.sock` in `directory`.
    public convenience init(directory: URL) throws {
        try self.init(path: directory.appendingPathComponent("notify.sock").path, abstract: false)
    }

    /// A socket in the abstract namespace (no file; `NOTIFY_SOCKET=@name`).
    public convenience init(abstractName: String) throws {
        try self.init(path: abstractName, abstract: true)
    }

    private init(path: String, abstract: Bool) throws {
        self.path = abstract ? "" : path
        fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw TestBroker.Failure.setup("socket: \(String(cString: strerror(errno)))") }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let bytes = (abstract ? [0] : []) + Array(path.utf8)
        guard bytes.count < MemoryLayout.size(ofValue: address.sun_path) else {
            close(fd)
            throw TestBroker.Failure.setup("socket path too long: \(path)")
        }
        withUnsafeMutableBytes(of: &address.sun_path) { $0.copyBytes(from: bytes) }
        let length = socklen_t(MemoryLayout<sockaddr_un>.offset(of: \.sun_path)! + bytes.count + (abstract ? 0 : 1))
        let rc = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) }
        }
        guard rc == 0 else {
            close(fd)
            throw TestBroker.Failure.setup("bind \(path): \(String(cString: strerror(errno)))")
        }
    }

    deinit {
        close(fd)
        if !path.isEmpty { unlink(path) }
    }

    /// Every message so far (each one datagram, lines of `KEY=VALUE`).
    public var messages: [String] {
        lock.lock()
        defer { lock.unlock() }
        return received
    }

    /// Waits up to `timeout` seconds for a message (received from now or
    /// before) that satisfies `predicate`.
    public func waitFor(timeout: Double, _ predicate: (String) -> Bool) -> String? {
        let deadline = Date(timeIntervalSinceNow: timeout)
        while true {
            if let found = messages.first(where: predicate) { return found }
            let left = deadline.timeIntervalSinceNow
            guard left > 0 else { return nil }
            var p = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            guard poll(&p, 1, Int32(min(left, 0.2) * 1000) + 1) > 0 else { continue }
            var buffer = [UInt8](repeating: 0, count: 4096)
            let n = recv(fd, &buffer, buffer.count, Int32(MSG_DONTWAIT))
            if n > 0 {
                lock.lock()
                received.append(String(decoding: buffer[0..<n], as: UTF8.self))
                lock.unlock()
            }
        }
    }
}

/// A TCP port on 127.0.0.1 where something that is not an MQTT broker
/// listens: it answers whatever it is sent with an HTTP error and closes, as
/// a web server on a wrong port would.
public final class NotMQTTServer: @unchecked Sendable {
    public let port: Int
    private let fd: Int32
    private let thread: Thread

    public init() throws {
        guard let (fd, port) = Sockets.listen(port: 0) else { throw TestBroker.Failure.setup("cannot listen") }
        self.fd = fd
        self.port = port
        thread = Thread {
            while true {
                let client = accept(fd, nil, nil)
                guard client >= 0 else { return }
                var buffer = [UInt8](repeating: 0, count: 1024)
                _ = read(client, &buffer, buffer.count)
                let answer = Array("HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n".utf8)
                _ = write(client, answer, answer.count)
                close(client)
            }
        }
        thread.start()
    }

    deinit {
        // Ends the accept loop: accept fails on a socket shut down.
        shutdown(fd, Int32(SHUT_RDWR))
        close(fd)
    }
}
