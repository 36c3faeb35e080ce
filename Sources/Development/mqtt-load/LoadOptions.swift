import Foundation

/// The command line of `mqtt-load` (parsed by hand: the tool depends on MQTT only).
struct LoadOptions {
    var publishURL = "mqtt://127.0.0.1:1883"
    var subscribeURL: String?
    var filters: [String] = []
    var meters = 1000
    var connections = 4
    var window = 100
    var rate = 2000.0
    var rateSeconds = 5.0
    var burst = 100_000
    var warmUpChunk = 500
    /// How long the warm-up waits for a chunk without an arrival (default: 5 s at most).
    var warmUpQuiet: Double?
    var enyEvery = 5
    var clockOffset: Int64 = -200
    var drainSeconds = 5.0
    var probeSeconds = 30.0
    var watches: [ProcessWatch] = []
    var keyValue = false
    var publishQoS = 1
    var subscribeQoS = 1
    /// A client id for the counter with a persistent session (clean session
    /// off): the broker keeps counting for it across a restart of its own.
    var counterSession: String?
    var progress = false
    /// The rate phase waits until this file exists (after "warm-up done" on stderr).
    var rateGate: String?
    var tcpNoDelay = false
    /// One MQTT connection per meter, all on one event loop, instead of `connections` shared ones.
    var connectionPerMeter = false

    static let usage = """
        usage: mqtt-load --publish mqtt://HOST:PORT [--subscribe mqtt://HOST:PORT] [--filter F]...
                         [--meters N] [--connections N] [--window N] [--rate MSG_PER_S] [--rate-seconds S]
                         [--burst N] [--warmup-chunk N] [--warmup-quiet S] [--eny-every K] [--clock-offset S] [--drain-seconds S]
                         [--probe-seconds S] [--watch NAME=PID]... [--kv]
                         [--publish-qos 0|1|2] [--subscribe-qos 0|1|2] [--counter-session ID] [--progress]
                         [--rate-gate FILE]
                         [--tcp-nodelay] [--connection-per-meter]

        Simulated KPM33B meters (ids 33B12259 + 5 digits) publish the real sample payloads
        (MQTT_RT_DATA, and MQTT_ENY_NOW as every K-th reading of a meter) with QoS 1 on
        --connections connections, each with at most --window unacknowledged messages.
        In the same process a counter subscribes with QoS 1 to each --filter (default:
        MQTT_RT_DATA and MQTT_ENY_NOW) on the --subscribe broker and matches what arrives
        to what was sent by id and time, whatever the payload became on the way.

        Phases: probe (one message every 100 ms until one arrives), warm-up (two readings
        per meter, so discovery and Home Assistant configs are out of the way; sent in
        chunks of --warmup-chunk messages, each waited for: a proxy announces a new
        meter with about 16 messages, which would otherwise be timed as readings), rate
        (--rate msg/s for --rate-seconds: latency), burst (--burst messages as fast as the
        broker takes them: throughput). A warm-up chunk ends when all its messages arrived
        or nothing arrived for --warmup-quiet seconds (default: --drain-seconds, at most 5).
        --rate-gate FILE: after the warm-up, "mqtt-load: warm-up done" on stderr, then
        the rate phase waits until FILE exists (tools/bench zeroes callgrind's counts there).
        Another phase ends when all its messages arrived or
        nothing arrived for --drain-seconds. --watch reports CPU time per received message
        and peak RSS of other processes (Linux /proc). --kv prints key=value lines.

        --publish-qos and --subscribe-qos change the QoS of the meters and of the counter
        (default 1 both). With QoS 0 a publisher's window is released when libmosquitto
        wrote the message to the socket, so the load follows the broker's TCP back-pressure.
        --counter-session ID gives the counter that client id and a persistent session, and
        makes it reconnect within a second: with --subscribe-qos 1 and a broker with
        persistence, a restart of the counter's broker loses no message the broker had
        accepted. Each phase reports `accepted` (PUBACKs at QoS 1, socket writes at QoS 0);
        `lost` is sent minus received. --progress writes "mqtt-load: phase NAME started" on
        stderr when a phase begins (tools/bench times kills and outages from it).
        --tcp-nodelay turns Nagle's algorithm off on the load's own broker connections
        (needed for latency at QoS 0: nothing comes back to carry the TCP ACK).
        --connection-per-meter gives every meter its own connection (client id
        mqtt-load-PID-mNNNNN), all on one event-loop thread (epoll, no select() limit);
        --window then bounds the messages in flight over all of them. The descriptor
        limit is raised to what the connections need (soft up to hard, and the hard one
        when allowed); mqtt-load says so and stops when it cannot be.
        """

    static func parse(_ arguments: [String]) throws -> LoadOptions {
        var o = LoadOptions()
        var i = 0
        func value() throws -> String {
            i += 1
            guard i < arguments.count else { throw UsageError("\(arguments[i - 1]) needs a value") }
            return arguments[i]
        }
        func number<T: LosslessStringConvertible>(_ name: String) throws -> T {
            let text = try value()
            guard let v = T(text) else { throw UsageError("\(name): '\(text)' is not a number") }
            return v
        }
        while i < arguments.count {
            let a = arguments[i]
            switch a {
            case "--publish": o.publishURL = try value()
            case "--subscribe": o.subscribeURL = try value()
            case "--filter": o.filters.append(try value())
            case "--meters": o.meters = try number(a)
            case "--connections": o.connections = try number(a)
            case "--window": o.window = try number(a)
            case "--rate": o.rate = try number(a)
            case "--rate-seconds": o.rateSeconds = try number(a)
            case "--burst": o.burst = try number(a)
            case "--warmup-chunk": o.warmUpChunk = try number(a)
            case "--warmup-quiet": o.warmUpQuiet = try number(a)
            case "--eny-every": o.enyEvery = try number(a)
            case "--clock-offset": o.clockOffset = try number(a)
            case "--drain-seconds": o.drainSeconds = try number(a)
            case "--probe-seconds": o.probeSeconds = try number(a)
            case "--watch":
                let text = try value()
                let parts = text.split(separator: "=", maxSplits: 1)
                guard parts.count == 2, let pid = Int32(parts[1]) else { throw UsageError("--watch wants NAME=PID, got '\(text)'") }
                o.watches.append(ProcessWatch(name: String(parts[0]), pid: pid))
            case "--kv": o.keyValue = true
            case "--publish-qos": o.publishQoS = try number(a)
            case "--subscribe-qos": o.subscribeQoS = try number(a)
            case "--counter-session": o.counterSession = try value()
            case "--progress": o.progress = true
            case "--rate-gate": o.rateGate = try value()
            case "--tcp-nodelay": o.tcpNoDelay = true
            case "--connection-per-meter": o.connectionPerMeter = true
            case "-h", "--help": throw UsageError(nil)
            default: throw UsageError("unknown argument '\(a)'")
            }
            i += 1
        }
        if o.filters.isEmpty { o.filters = ["MQTT_RT_DATA", "MQTT_ENY_NOW"] }
        if o.connectionPerMeter { o.connections = o.meters }
        guard (1...99_999).contains(o.meters) else { throw UsageError("--meters must be 1...99999") }
        guard o.connections >= 1, o.window >= 1, o.warmUpChunk >= 1 else { throw UsageError("--connections, --window and --warmup-chunk must be at least 1") }
        guard (0...2).contains(o.publishQoS), (0...2).contains(o.subscribeQoS) else { throw UsageError("QoS must be 0, 1 or 2") }
        if let id = o.counterSession, id.isEmpty { throw UsageError("--counter-session needs a client id") }
        guard o.rate >= 0, o.rateSeconds >= 0, o.burst >= 0, o.enyEvery >= 0 else { throw UsageError("negative value") }
        return o
    }
}

struct UsageError: Error {
    let message: String?
    init(_ message: String?) { self.message = message }
}
