import Foundation
import Glibc
import MQTT

/// A TCP relay on 127.0.0.1 in front of a broker, so that a test can cut a
/// client's connection abruptly — no DISCONNECT packet, as when a device loses
/// power — while the client and the broker both keep running.
///
/// Each accepted connection is piped to the target by its own thread.
/// `cutAll()` resets every piped connection (RST on both sides);
/// `refusing = true` makes new connections close at once.
public final class TCPRelay: @unchecked Sendable {
    public let port: Int
    public let targetPort: Int
    private let listener: Int32
    private let lock = NSLock()
    private var pairs: [(client: Int32, upstream: Int32)] = []
    private var refusingNew = false
    private var stopped = false

    /// 127.0.0.1 and the relay's port.
    public var endpoint: MQTTEndpoint { MQTTEndpoint(host: "127.0.0.1", port: port, tls: false) }

    public init(targetPort: Int) throws {
        guard let (fd, port) = Sockets.listen() else {
            throw TestBroker.Failure.setup("relay: cannot listen on 127.0.0.1")
        }
        listener = fd
        self.port = port
        self.targetPort = targetPort
        let thread = Thread { [self] in acceptLoop() }
        thread.name = "relay-accept-\(port)"
        thread.start()
    }

    deinit { stop() }

    /// When true, new connections are accepted and closed at once.
    public var refusing: Bool {
        get { lock.withLock { refusingNew } }
        set { lock.withLock { refusingNew = newValue } }
    }

    /// Number of connections currently piped.
    public var connectionCount: Int { lock.withLock { pairs.count } }

    /// Resets every piped connection on both sides.
    public func cutAll() {
        let current = lock.withLock { pairs }
        for pair in current {
            Sockets.abort(pair.client)
            Sockets.abort(pair.upstream)
        }
    }

    /// Stops accepting and cuts everything. Idempotent.
    public func stop() {
        let wasStopped = lock.withLock { () -> Bool in
            defer { stopped = true }
            return stopped
        }
        guard !wasStopped else { return }
        shutdown(listener, Int32(SHUT_RDWR))
        cutAll()
    }

    private func acceptLoop() {
        while true {
            let client = accept(listener, nil, nil)
            if client < 0 {
                if errno == EINTR { continue }
                break
            }
            let refuse = lock.withLock { refusingNew || stopped }
            guard !refuse, let upstream = Sockets.connect(port: targetPort) else {
                Sockets.abort(client)
                close(client)
                continue
            }
            lock.withLock { pairs.append((client, upstream)) }
            let thread = Thread { [self] in pipe(client, upstream) }
            thread.start()
        }
        close(listener)
    }

    /// Copies bytes both ways until either side closes, then closes both.
    private func pipe(_ a: Int32, _ b: Int32) {
        var fds = [pollfd(fd: a, events: Int16(POLLIN), revents: 0),
                   pollfd(fd: b, events: Int16(POLLIN), revents: 0)]
        var buffer = [UInt8](repeating: 0, count: 16 * 1024)
        loop: while true {
            let ready = poll(&fds, 2, 1000)
            if ready < 0 && errno != EINTR { break }
            if ready <= 0 { continue }
            for i in 0..<2 where fds[i].revents != 0 {
                let from = fds[i].fd, to = fds[1 - i].fd
                let n = buffer.withUnsafeMutableBytes { read(from, $0.baseAddress, $0.count) }
                if n <= 0 { break loop }
                var offset = 0
                while offset < n {
                    // MSG_NOSIGNAL: a peer that is gone must not raise SIGPIPE in the test process.
                    let w = buffer.withUnsafeBytes { send(to, $0.baseAddress! + offset, n - offset, Int32(MSG_NOSIGNAL)) }
                    if w <= 0 { break loop }
                    offset += w
                }
            }
        }
        lock.withLock { pairs.removeAll { $0.client == a } }
        close(a)
        close(b)
    }
}
