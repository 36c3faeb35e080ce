import Foundation

/// TCP_NODELAY on this process's broker connections (`--tcp-nodelay`).
///
/// The MQTT layer leaves Nagle's algorithm on. At QoS 1 the broker's PUBACKs
/// carry the TCP acknowledgements back at once; at QoS 0 nothing comes back,
/// so each small PUBLISH waits for the broker's delayed ACK (up to 40 ms on
/// Linux) and the load's own sockets, not the path under test, decide the
/// latency. mqtt-load may not change the MQTT target, so it finds its own TCP
/// sockets in `/proc/self/fd` instead (libmosquitto's wake-up socket pairs are
/// AF_UNIX and are left alone). A connection made later (a reconnect) is
/// covered by the next call; `main` calls it at the start of every phase.
enum SocketTuning {
    /// Returns how many TCP sockets now have TCP_NODELAY.
    @discardableResult
    static func setNoDelayOnTCPSockets() -> Int {
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd") else { return 0 }
        var count = 0
        for name in names {
            guard let fd = Int32(name) else { continue }
            var address = sockaddr_storage()
            var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
            let named = withUnsafeMutablePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
            }
            guard named == 0, Int32(address.ss_family) == AF_INET || Int32(address.ss_family) == AF_INET6 else { continue }
            var type: Int32 = 0
            var typeLength = socklen_t(MemoryLayout<Int32>.size)
            guard getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &typeLength) == 0, type == Int32(SOCK_STREAM.rawValue) else { continue }
            var one: Int32 = 1
            if setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size)) == 0 { count += 1 }
        }
        return count
    }
}
