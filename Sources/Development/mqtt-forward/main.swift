import MQTT
#if canImport(Glibc)
import Glibc
#endif

// mqtt-forward: the least a forwarder over libmosquitto can do, for tools/bench's
// cost scenario (a contender beside the proxy and Mosquitto's bridge). See
// ForwardOptions.usage.

/// One line to standard output (`fd` 1) or error (2), written at once.
func emit(_ line: String, fd: Int32 = 1) {
    var text = line + "\n"
    text.withUTF8 { bytes in _ = write(fd, bytes.baseAddress, bytes.count) }
}

func exitWithUsage(_ error: ForwardError) -> Never {
    if let message = error.message {
        emit("mqtt-forward: \(message)", fd: 2)
        emit(ForwardOptions.usage, fd: 2)
        exit(64)
    }
    emit(ForwardOptions.usage)
    exit(0)
}

let options: ForwardOptions
do {
    options = try ForwardOptions.parse(Array(CommandLine.arguments.dropFirst()))
} catch {
    exitWithUsage(error)
}

// SIGTERM and SIGINT are blocked in every thread and taken by a waiting
// thread, which stops the loop: no handler runs inside libmosquitto.
var signals = sigset_t()
sigemptyset(&signals)
sigaddset(&signals, SIGTERM)
sigaddset(&signals, SIGINT)
pthread_sigmask(SIG_BLOCK, &signals, nil)
let blocked = signals

do throws(ForwardError) {
    let status: Int32
    switch options.transport {
    case .raw:
        var pipeFDs: [Int32] = [0, 0]
        guard pipe(&pipeFDs) == 0 else { throw ForwardError("pipe: \(String(cString: strerror(errno)))") }
        let forwarder = try RawForwarder(options: options, stopFD: pipeFDs[0])
        let writer = pipeFDs[1]
        LoopThread.spawn(name: "signals") {
            var set = blocked, signal: Int32 = 0
            sigwait(&set, &signal)
            var byte: UInt8 = 1
            _ = write(writer, &byte, 1)
        }.detach()
        status = try forwarder.run()
    case .client:
        let forwarder = try ClientForwarder(options: options)
        let loop = forwarder.loop
        LoopThread.spawn(name: "signals") {
            var set = blocked, signal: Int32 = 0
            sigwait(&set, &signal)
            loop.stop()
        }.detach()
        status = try forwarder.run()
    }
    exit(status)
} catch {
    emit("mqtt-forward: \(error.message ?? "failed")", fd: 2)
    exit(1)
}
