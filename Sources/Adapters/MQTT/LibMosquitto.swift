internal import CMosquitto

/// Process-wide libmosquitto state.
enum LibMosquitto {
    /// `mosquitto_lib_init` exactly once per process. Swift initialises a global
    /// lazily under `swift_once`, so concurrent first uses are safe. It is never
    /// undone (`mosquitto_lib_cleanup`): connections may live until exit.
    static let initialised: Void = {
        _ = mosquitto_lib_init()
    }()
}

#if canImport(Glibc)
import Glibc
#endif

extension LibMosquitto {
    /// Closes the wake-up socket pair `mosquitto_new` opened for `mosq` and
    /// marks it absent, so that the client holds one descriptor (its socket)
    /// instead of three. Returns whether it did.
    ///
    /// libmosquitto 2.0.11 makes the pair in `mosquitto_reinitialise` only to
    /// break its own `select()` (`mosquitto_loop`, `loop_start`); without one
    /// it logs a warning and works on (`net__socketpair` failing is not an
    /// error there), and every other use checks for `INVALID_SOCKET`
    /// (`packet__queue` then skips writing a wake byte per packet). An
    /// `EventLoop` never selects, so the pair is dead weight: 2 descriptors
    /// per client, 20,000 for a fleet of 10,000.
    ///
    /// The pair sits right after the socket at the start of the client's
    /// struct (`mosquitto_internal.h`: `mosq_sock_t sock, sockpairR,
    /// sockpairW;` for a client build). That layout is private, so it is
    /// verified before anything is written: the socket must still be -1 (not
    /// connected), the two values must be distinct non-blocking AF_UNIX
    /// stream sockets, and a byte written to the second must come out of the
    /// first. Anything else leaves the client untouched. Call it right after
    /// `mosquitto_new`, before any other call on `mosq`. Also true when
    /// libmosquitto could not open the pair in the first place (descriptor
    /// limit reached: both fields -1).
    static func closeWakeSocketPair(_ mosq: OpaquePointer) -> Bool {
        let fields = UnsafeMutableRawPointer(mosq).assumingMemoryBound(to: Int32.self)
        let sock = fields[0], reader = fields[1], writer = fields[2]
        if sock == -1 && reader == -1 && writer == -1 { return true }
        guard sock == -1, reader >= 0, writer >= 0, reader != writer,
              isNonBlockingUnixStream(reader), isNonBlockingUnixStream(writer) else { return false }
        // Drain anything pending, then check that the two ends are connected.
        var byte: UInt8 = 0
        while read(reader, &byte, 1) > 0 {}
        var probe: UInt8 = 0x5A
        guard write(writer, &probe, 1) == 1 else { return false }
        var echoed: UInt8 = 0
        guard read(reader, &echoed, 1) == 1, echoed == probe else { return false }
        fields[1] = -1
        fields[2] = -1
        close(reader)
        close(writer)
        return true
    }

    private static func isNonBlockingUnixStream(_ fd: Int32) -> Bool {
        let flags = fcntl(fd, F_GETFL)
        guard flags >= 0, flags & O_NONBLOCK != 0 else { return false }
        var type: Int32 = 0
        var length = socklen_t(MemoryLayout<Int32>.size)
        guard getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &length) == 0, type == Int32(SOCK_STREAM.rawValue) else { return false }
        var address = sockaddr_storage()
        var addressLength = socklen_t(MemoryLayout<sockaddr_storage>.size)
        let named = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &addressLength) }
        }
        return named == 0 && Int32(address.ss_family) == AF_UNIX
    }
}
