import Foundation
import MQTT

// mqtt-load: load generator and counting subscriber in one process, so that
// latency is measured on one monotonic clock (see Ledger). Usage: LoadOptions.
// `mqtt-load report …`: tools/bench's closing table (BenchReport).

if CommandLine.arguments.dropFirst().first == "report" {
    exit(BenchReport.main(Array(CommandLine.arguments.dropFirst(2))))
}

let options: LoadOptions
do {
    options = try LoadOptions.parse(Array(CommandLine.arguments.dropFirst()))
} catch let error as UsageError {
    if let message = error.message { FileHandle.standardError.write(Data("mqtt-load: \(message)\n".utf8)) }
    print(LoadOptions.usage)
    exit(error.message == nil ? 0 : 64)
}

func fail(_ message: String) -> Never {
    FileHandle.standardError.write(Data("mqtt-load: \(message)\n".utf8))
    exit(1)
}

enum Phase: Int, CaseIterable {
    case probe, warmUp, rate, burst
    var name: String { ["probe", "warmup", "rate", "burst"][rawValue] }
}

let probeInterval = 0.1
let probeLimit = Int(options.probeSeconds / probeInterval) + 1
let rateCount = Int(options.rate * options.rateSeconds)
let warmUpCount = 2 * options.meters
let capacity = probeLimit + warmUpCount + rateCount + options.burst
let readingsPerMeter = capacity / options.meters + 1
if options.clockOffset + Int64(readingsPerMeter) > 250 {
    FileHandle.standardError.write(Data("""
        mqtt-load: warning: meter clocks run up to \(options.clockOffset + Int64(readingsPerMeter)) s ahead; \
        the proxy reports clock offsets over its threshold in the discovery messages (extra traffic)\n
        """.utf8))
}
let ledger = Ledger(meters: options.meters, capacity: capacity, base: MeterClock.localNow() + options.clockOffset,
                    idPrefix: "33B12259", phases: Phase.allCases.count)

// The counter.
let counterEndpoint: MQTTEndpoint
let publishEndpoint: MQTTEndpoint
do {
    publishEndpoint = try MQTTEndpoint.parse(options.publishURL)
    counterEndpoint = try MQTTEndpoint.parse(options.subscribeURL ?? options.publishURL)
} catch {
    fail("\(error)")
}
// The counter: its own loop and thread, so counting never waits for the publishers.
let counterLoop: EventLoop
let counter: MQTTClient
let counterSubscribed = Mutable(false)
do {
    var counterOptions = MQTTOptions(clientID: "mqtt-load-\(getpid())-count", cleanSession: true, keepAliveSeconds: 60)
    if let id = options.counterSession {
        // Persistent: what the broker accepted while the counter was away (or
        // had sent it unacknowledged) comes after the reconnect, so a restart
        // of the counter's broker loses nothing of its own (with persistence).
        counterOptions.clientID = id
        counterOptions.cleanSession = false
        counterOptions.reconnectMinSeconds = 0.2
        counterOptions.reconnectMaxSeconds = 1
    }
    counterLoop = try EventLoop()
    counter = try MQTTClient(loop: counterLoop, endpoint: counterEndpoint, options: counterOptions)
    // Set up before the loop's thread runs: nothing else touches the client yet.
    counter.onMessage = { message in
        ledger.recordReceive(message.payload, at: monotonicNs())
    }
    counter.onSubscriptionsSettled = { counterSubscribed.update { $0 = true } }
    for filter in options.filters { try counter.subscribe(filter, qos: options.subscribeQoS) }
} catch {
    fail("counter: \(error)")
}
let counterThread = counterLoop.startThread(name: "load-count")
counterLoop.execute { counter.start() }
let subscribeDeadline = monotonicNs() + 10_000_000_000
while !counterSubscribed.value {
    guard monotonicNs() < subscribeDeadline else { fail("counter: cannot subscribe on \(counterEndpoint)") }
    usleep(10_000)
}

// Descriptors: 3 per libmosquitto client (socket and socket pair; a
// --connection-per-meter client drops its pair), the counter, spares.
let limit = DescriptorLimit.raise(to: (options.connections + 1) * DescriptorLimit.perClient + 64)
let publishers: any LoadPublishers
do {
    if options.connectionPerMeter {
        let meters = try MeterPublishers(endpoint: publishEndpoint, window: options.window, qos: options.publishQoS, ledger: ledger,
                                         enyEvery: options.enyEvery, readingsPerMeter: readingsPerMeter)
        let needed = meters.descriptors + DescriptorLimit.perClient + 64
        guard limit.now >= needed else {
            fail("--connection-per-meter: \(options.meters) connections need \(needed) file descriptors; \(DescriptorLimit.raise(to: needed))")
        }
        publishers = meters
        try meters.start(timeout: max(10, Double(options.meters) / 500))
    } else {
        guard limit.isEnough else { fail("\(options.connections) connections: \(limit)") }
        let threaded = try Publishers(endpoint: publishEndpoint, count: options.connections, window: options.window,
                                      qos: options.publishQoS, ledger: ledger, enyEvery: options.enyEvery,
                                      readingsPerMeter: readingsPerMeter)
        publishers = threaded
        try threaded.start(timeout: 10)
    }
} catch {
    fail("publishers: \(error)")
}

/// One phase's figures.
struct Outcome {
    var phase: Phase
    var sent: Publishers.Sent
    /// PUBACKs (QoS 1) or socket writes (QoS 0) of this phase's messages.
    var accepted: Int
    var tally: Ledger.Tally
    var cpu: [(name: String, seconds: Double)]
    var switches: [(name: String, count: Int)]
    /// Per watched process: VmHWM at the end of the phase (a peak since it
    /// started) and the peak RssAnon during the phase, in KiB.
    var memory: [(name: String, hwm: Int?, anon: Int)]
    var lost: Int { sent.count - tally.received }
    /// First send to last receipt.
    var seconds: Double {
        guard tally.lastReceiveNs > sent.firstNs else { return 0 }
        return Double(tally.lastReceiveNs - sent.firstNs) / 1e9
    }
    var throughput: Double { seconds > 0 ? Double(tally.received) / seconds : 0 }
    var publishRate: Double {
        sent.lastNs > sent.firstNs ? Double(sent.count - 1) / (Double(sent.lastNs - sent.firstNs) / 1e9) : 0
    }
    func latencyMs(_ quantile: Double) -> Double {
        let sorted = tally.latenciesNs.sorted()
        guard !sorted.isEmpty else { return .nan }
        let index = min(sorted.count - 1, Int((quantile * Double(sorted.count)).rounded(.up)) - 1)
        return Double(sorted[max(0, index)]) / 1e6
    }
}

let selfWatch = ProcessWatch(name: "load", pid: getpid())
let watches = [selfWatch] + options.watches

func cpuNow() -> [Double?] { watches.map { $0.cpuSeconds() } }
let memorySampler = MemorySampler(options.watches)
func switchesNow() -> [Int?] { watches.map { $0.contextSwitches() } }

/// Waits until every message of the phase arrived, or nothing arrived for
/// `quiet` seconds (default `--drain-seconds`).
func drain(_ phase: Phase, sent: Int, quiet: Double = options.drainSeconds) {
    var last = ledger.received(phase.rawValue)
    var lastChange = monotonicNs()
    while last < sent {
        usleep(10_000)
        let now = ledger.received(phase.rawValue)
        if now != last {
            last = now
            lastChange = monotonicNs()
        } else if Double(monotonicNs() - lastChange) / 1e9 > quiet {
            return
        }
    }
}

/// Sends `count` messages (in chunks, each drained before the next, when
/// `chunk` is given) and waits for them, until nothing arrived for `quiet` s.
func run(_ phase: Phase, count: Int, rate: Double?, chunk: Int? = nil, quiet: Double = options.drainSeconds) -> Outcome {
    if options.tcpNoDelay { SocketTuning.setNoDelayOnTCPSockets() }
    if options.progress {
        FileHandle.standardError.write(Data("mqtt-load: phase \(phase.name) started\n".utf8))
    }
    let before = cpuNow()
    let switchesBefore = switchesNow()
    let acknowledgedBefore = publishers.acknowledged
    memorySampler.reset()
    var sent = Publishers.Sent()
    var left = count
    while left > 0 {
        let n = min(left, chunk ?? left)
        let s = publishers.send(count: n, phase: phase.rawValue, rate: rate)
        if sent.count == 0 { sent.firstNs = s.firstNs }
        sent.lastNs = max(sent.lastNs, s.lastNs)
        sent.count += s.count
        sent.failed += s.failed
        left -= n
        drain(phase, sent: sent.count, quiet: quiet)
    }
    // Normally long done; a publisher whose broker went away would wait here.
    let ackDeadline = monotonicNs() + 5_000_000_000
    while publishers.acknowledged - acknowledgedBefore < sent.count - sent.failed, monotonicNs() < ackDeadline {
        usleep(10_000)
    }
    let accepted = publishers.acknowledged - acknowledgedBefore
    let after = cpuNow()
    let switchesAfter = switchesNow()
    var cpu: [(String, Double)] = []
    var switches: [(String, Int)] = []
    for (i, w) in watches.enumerated() {
        if let a = after[i], let b = before[i] { cpu.append((w.name, a - b)) }
        if let a = switchesAfter[i], let b = switchesBefore[i] { switches.append((w.name, a - b)) }
    }
    usleep(40_000)  // one more memory sample
    let anon = memorySampler.peaksKiB()
    let memory = options.watches.enumerated().map { (i, w) in (w.name, w.statusKiB("VmHWM"), anon[i]) }
    return Outcome(phase: phase, sent: sent, accepted: accepted, tally: ledger.tally(phase.rawValue), cpu: cpu, switches: switches,
                   memory: memory)
}

if options.tcpNoDelay, SocketTuning.setNoDelayOnTCPSockets() < options.connections + 1 {
    fail("--tcp-nodelay: fewer TCP sockets than connections")
}

// Probe: the path (bridge, proxy) is up when one message made it through.
var probeSent = Publishers.Sent()
let probeDeadline = monotonicNs() + UInt64(options.probeSeconds * 1e9)
while ledger.received(Phase.probe.rawValue) == 0 {
    guard monotonicNs() < probeDeadline, publishers.next < probeLimit else {
        fail("nothing arrived on \(options.filters.joined(separator: ", ")) at \(counterEndpoint) within \(options.probeSeconds) s")
    }
    let s = publishers.send(count: 1, phase: Phase.probe.rawValue, rate: nil)
    probeSent.count += s.count
    usleep(UInt32(probeInterval * 1e6))
}
// Probes sent before the path was up never arrive and are not reported: a
// long --drain-seconds (made for outages) need not be waited here.
drain(.probe, sent: probeSent.count, quiet: min(options.drainSeconds, 2))
var outcomes: [Outcome] = []
// A long --drain-seconds is made for outages in the later phases; the
// warm-up's chunks wait at most the default 5 s each (--warmup-quiet: a
// contender slowed down by valgrind announces 500 new meters for longer).
outcomes.append(run(.warmUp, count: warmUpCount, rate: nil, chunk: options.warmUpChunk,
                    quiet: options.warmUpQuiet ?? min(options.drainSeconds, 5)))
usleep(200_000)
if let gate = options.rateGate {
    FileHandle.standardError.write(Data("mqtt-load: warm-up done\n".utf8))
    while access(gate, F_OK) != 0 { usleep(10_000) }
}
if rateCount > 0 {
    outcomes.append(run(.rate, count: rateCount, rate: options.rate))
    usleep(200_000)
}
if options.burst > 0 {
    outcomes.append(run(.burst, count: options.burst, rate: nil))
}
let peaks = options.watches.map { ($0.name, $0.statusKiB("VmHWM")) }
publishers.stop()
counterLoop.execute { counter.stop() }
counterLoop.stop()
counterThread.join()

// Report.
func fixed(_ v: Double, _ digits: Int) -> String { v.isNaN ? "-" : String(format: "%.\(digits)f", v) }

if options.keyValue {
    print("meters=\(options.meters) connections=\(options.connections) window=\(options.window) unknown=\(ledger.unknownCount)")
    for o in outcomes {
        var line = "phase=\(o.phase.name) sent=\(o.sent.count) failed=\(o.sent.failed) accepted=\(o.accepted) received=\(o.tally.received) "
            + "lost=\(o.lost) duplicates=\(o.tally.duplicates) seconds=\(fixed(o.seconds, 3)) "
            + "throughput=\(fixed(o.throughput, 0)) publish_rate=\(fixed(o.publishRate, 0)) "
            + "p50_ms=\(fixed(o.latencyMs(0.5), 3)) p99_ms=\(fixed(o.latencyMs(0.99), 3)) max_ms=\(fixed(o.latencyMs(1), 3))"
        for (name, seconds) in o.cpu {
            line += " cpu_s.\(name)=\(fixed(seconds, 2)) cpu_us_per_msg.\(name)=\(fixed(o.tally.received > 0 ? seconds * 1e6 / Double(o.tally.received) : .nan, 2))"
        }
        for (name, count) in o.switches {
            line += " switches_per_msg.\(name)=\(fixed(o.tally.received > 0 ? Double(count) / Double(o.tally.received) : .nan, 2))"
        }
        for (name, hwm, anon) in o.memory {
            line += " hwm_kib.\(name)=\(hwm.map(String.init) ?? "-") anon_peak_kib.\(name)=\(anon)"
        }
        print(line)
    }
    print(peaks.map { "peak_rss_kib.\($0.0)=\($0.1.map(String.init) ?? "-")" }.joined(separator: " "))
} else {
    print("\(options.meters) meters, \(options.connections) connections × window \(options.window); "
          + "publish \(publishEndpoint), count \(options.filters.joined(separator: " ")) on \(counterEndpoint)")
    let header = ["phase", "sent", "received", "lost", "dup", "s", "msg/s", "p50 ms", "p99 ms", "max ms"]
        + watches.map { "\($0.name) µs/msg" }
    print(header.map { $0.padding(toLength: 12, withPad: " ", startingAt: 0) }.joined())
    for o in outcomes {
        var cells = [o.phase.name, "\(o.sent.count)", "\(o.tally.received)", "\(o.lost)", "\(o.tally.duplicates)",
                     fixed(o.seconds, 2), fixed(o.throughput, 0), fixed(o.latencyMs(0.5), 2), fixed(o.latencyMs(0.99), 2),
                     fixed(o.latencyMs(1), 2)]
        cells += o.cpu.map { fixed(o.tally.received > 0 ? $0.seconds * 1e6 / Double(o.tally.received) : .nan, 1) }
        print(cells.map { $0.padding(toLength: 12, withPad: " ", startingAt: 0) }.joined())
    }
    for (name, kib) in peaks { print("peak RSS \(name): \(kib.map { "\($0 / 1024) MiB" } ?? "-")") }
    if ledger.unknownCount > 0 { print("unknown messages received: \(ledger.unknownCount)") }
}
