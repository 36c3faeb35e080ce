import Glibc  // Linux: the test fixtures use Glibc's socket API directly.

private let streamType = Int32(SOCK_STREAM.rawValue)

/// Small blocking-socket helpers for loopback test fixtures (IPv4 only).
enum Sockets {
    static func loopbackAddress(port: Int) -> sockaddr_in {
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        return address
    }

    /// A listening socket on 127.0.0.1:`port` (0 = any free port) and its port.
    static func listen(port: Int = 0, backlog: Int32 = 64) -> (fd: Int32, port: Int)? {
        let fd = socket(AF_INET, streamType, 0)
        guard fd >= 0 else { return nil }
        var one: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        var address = loopbackAddress(port: port)
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        guard bound == 0, Glibc.listen(fd, backlog) == 0, let actual = localPort(fd) else {
            close(fd)
            return nil
        }
        return (fd, actual)
    }

    static func localPort(_ fd: Int32) -> Int? {
        var address = sockaddr_in()
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let rc = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        return rc == 0 ? Int(UInt16(bigEndian: address.sin_port)) : nil
    }

    /// A connected socket to 127.0.0.1:`port`, or nil.
    static func connect(port: Int) -> Int32? {
        let fd = socket(AF_INET, streamType, 0)
        guard fd >= 0 else { return nil }
        var address = loopbackAddress(port: port)
        let rc = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        if rc != 0 { close(fd); return nil }
        return fd
    }

    /// Whether something accepts TCP connections on 127.0.0.1:`port`.
    static func accepts(port: Int) -> Bool {
        guard let fd = connect(port: port) else { return false }
        close(fd)
        return true
    }

    /// Closes with an RST instead of a FIN (SO_LINGER 0): the peer sees the
    /// connection reset, as when a network path dies.
    static func abort(_ fd: Int32) {
        var linger = Glibc.linger(l_onoff: 1, l_linger: 0)
        setsockopt(fd, SOL_SOCKET, SO_LINGER, &linger, socklen_t(MemoryLayout<Glibc.linger>.size))
        shutdown(fd, Int32(SHUT_RDWR))
    }
}

/// A TCP port on 127.0.0.1 that was free a moment ago (bound to port 0, read
/// back, closed). Another process may take it before you do: retry on failure.
public func freePort() -> Int {
    guard let (fd, port) = Sockets.listen(port: 0) else { return 0 }
    close(fd)
    return port
}
