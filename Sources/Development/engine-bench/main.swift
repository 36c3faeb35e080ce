import Foundation
import JanssonBaseline
import RuleEngine
import SimdjsonBaseline

// engine-bench: the compiled KPM33B program against two baselines, jansson and
// simdjson (on-demand API), in one run.
//
//   swift run -c release engine-bench [--seconds S] [--rules DIR] [--packs DIR]
//                                     [--messages N] [--case NAME] [--skip jansson|simdjson]
//
// Both sides get the same input bytes: the real sample payloads, with the id
// (1,000 meters) and the time rewritten in place for every message so that the
// duplicate filter sees a live stream, not one repeated message. The baseline
// parses the whole payload with jansson and builds the same clean object with
// jansson; the engine validates the whole payload in one pass, checks the id,
// runs the junk filters and copies the values byte for byte. The simdjson
// baseline does the engine's work with the fastest parser there is: it
// validates the whole payload, finds the tags, keeps each value's exact text,
// checks for all zeros and writes the clean object into a reused buffer
// (SimdjsonProjection). Rounds alternate between the three and the best round
// of each counts, so a noisy neighbour hurts all equally. The last line is
// machine-readable. Times are the benchmarking thread's CPU time
// (CLOCK_THREAD_CPUTIME_ID), not the wall clock's: on a busy machine the time
// other processes run while this one waits for a core stays out of the
// figures (what they do to its caches does not). `--messages N` runs N
// messages per round instead of a time budget, and `--case NAME` one case: a
// fixed amount of work for callgrind, whose instruction counts do not move
// with a busy machine; `--skip jansson` leaves a baseline out (jansson's
// rounds are most of a callgrind run's time).

let rtSample = #"{"id":"33B1225950027","ia":9.735,"ib":9.658,"ic":9.655,"ua":229.097,"ub":231.567,"uc":232.529,"uab":398.949,"ubc":401.920,"uca":399.784,"pa":2.2229,"pb":2.2293,"pc":2.2382,"zyggl":6.6905,"qa":-0.1648,"qb":-0.1649,"qc":-0.1632,"zwggl":-0.4930,"sa":2.2304,"sb":2.2366,"sc":2.2452,"zszgl":6.7122,"pfa":0.996,"pfb":0.996,"pfc":0.996,"zglys":0.996,"f":49.959,"uxja":0.000,"uxjb":239.774,"uxjc":119.874,"ixja":355.691,"ixjb":235.434,"ixjc":115.615,"unb":1.485,"inb":0.823,"pdm":6.6898,"qdm":-0.4971,"sdm":6.7118,"iadm":9.6838,"ibdm":9.6380,"icdm":9.6717,"time":"20260112163900","isend":"1"}"#
let enySample = #"{"id":"33B1225950027","zygsz":163.486,"fygsz":0.000,"zwgsz":0.000,"fwgsz":11.085,"zszsz":164.331,"zyjsz":8.668,"fyjsz":0.000,"zyfsz":25.344,"fyfsz":0.000,"zypsz":60.573,"fypsz":0.000,"zyvsz":68.898,"fyvsz":0.000,"zydvsz":0.000,"fydvsz":0.000,"time":"20260117211500","isend":"1"}"#

var seconds = 1.0
var rules = "rules/kpm33b"
var packs = "rules"
var messages: Int?
var only: String?
var skipped: Set<String> = []
var args = CommandLine.arguments.dropFirst()
while let a = args.popFirst() {
    switch a {
    case "--seconds": seconds = Double(args.popFirst() ?? "") ?? seconds
    case "--rules": rules = args.popFirst() ?? rules
    case "--packs": packs = args.popFirst() ?? packs
    case "--messages": messages = Int(args.popFirst() ?? "")
    case "--case": only = args.popFirst()
    case "--skip" where ["jansson", "simdjson"].contains(args.first ?? ""): skipped.insert(args.popFirst()!)
    default:
        print("usage: engine-bench [--seconds S] [--rules DIR] [--packs DIR] [--messages N] [--case NAME] [--skip jansson|simdjson]")
        exit(2)
    }
}

/// A payload buffer whose id and time digits are rewritten per message.
struct Stream {
    var bytes: [UInt8]
    let idDigits: Int      // offset of the id's last 4 characters
    let timeDigits: Int    // offset of the time's last 6 characters (HHmmss)

    init(_ sample: String) {
        bytes = Array(sample.utf8)
        let s = sample
        idDigits = s.utf8.distance(from: s.utf8.startIndex, to: s.range(of: "\"id\":\"")!.upperBound.samePosition(in: s.utf8)!) + 9
        timeDigits = s.utf8.distance(from: s.utf8.startIndex, to: s.range(of: "\"time\":\"")!.upperBound.samePosition(in: s.utf8)!) + 8
    }

    /// Message `i`: meter i % 1000, a time that advances every 1000 messages.
    mutating func set(_ i: Int) {
        var meter = i % 1000
        for k in stride(from: 3, through: 0, by: -1) { bytes[idDigits + k] = UInt8(48 + meter % 10); meter /= 10 }
        var t = (i / 1000) % 86400
        let hms = [t / 3600 % 24, t / 60 % 60, t % 60]
        t = 0
        for (k, v) in hms.enumerated() {
            bytes[timeDigits + 2 * k] = UInt8(48 + v / 10)
            bytes[timeDigits + 2 * k + 1] = UInt8(48 + v % 10)
        }
    }
}

/// The calling thread's CPU time: what a round costs this thread, whatever else runs on the machine.
func threadNanos() -> UInt64 {
    var ts = timespec()
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts)
    return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
}

/// Runs `body(i)` for `seconds` (or `messages` times); returns nanoseconds per call.
func measure(seconds: Double, messages: Int?, _ body: (Int) -> Int) -> (nsPerOp: Double, checksum: Int) {
    var i = 0
    var checksum = 0
    let start = threadNanos()
    if let messages {
        while i < messages { checksum &+= body(i); i += 1 }
        return (Double(threadNanos() - start) / Double(max(i, 1)), checksum)
    }
    let budget = UInt64(seconds * 1e9)
    while true {
        for _ in 0..<4096 { checksum &+= body(i); i += 1 }
        if threadNanos() - start >= budget { break }
    }
    return (Double(threadNanos() - start) / Double(i), checksum)
}

@MainActor func program(config: String?) -> Program {
    do {
        return try Compiler.build(rules: rules, config: config)
    } catch {
        print(error.description)
        exit(1)
    }
}

@MainActor func writeConfig(_ text: String) -> String {
    let path = NSTemporaryDirectory() + "engine-bench-\(getpid())-\(text.hashValue).yaml"
    _ = FileManager.default.createFile(atPath: path, contents: Data(text.utf8))
    return path
}

let plain = writeConfig("homeassistant: { enabled: false }\n")
let allGroups = writeConfig("homeassistant: { enabled: false }\nmeters:\n  defaults:\n    groups: [current, power, voltage, power_factor]\n")
defer { try? FileManager.default.removeItem(atPath: plain); try? FileManager.default.removeItem(atPath: allGroups) }

/// How a case runs the engine: one pack's engine alone (as before several packs
/// existed), the router over that one pack (the services' path: a pass-through),
/// or the router over every pack under `--packs` (id lookup, claim, then the engine).
enum Path { case engine, router, packs }

struct Case {
    let name: String
    let topic: String
    let sample: String
    let config: String
    let fields: [(String, String)]
    var path: Path = .engine
}
let base = [("id", "id"), ("time", "time")]
let phases: [(String, String)] = [
    ("current_l1", "ia"), ("current_l2", "ib"), ("current_l3", "ic"),
    ("active_power_l1", "pa"), ("active_power_l2", "pb"), ("active_power_l3", "pc"),
    ("voltage_l1", "ua"), ("voltage_l2", "ub"), ("voltage_l3", "uc"),
    ("power_factor_l1", "pfa"), ("power_factor_l2", "pfb"), ("power_factor_l3", "pfc"), ("power_factor", "zglys"),
]
let cases = [
    Case(name: "rt", topic: "MQTT_RT_DATA", sample: rtSample, config: plain, fields: base + [("active_power", "zyggl")]),
    Case(name: "eny", topic: "MQTT_ENY_NOW", sample: enySample, config: plain, fields: base + [("active_energy", "zygsz")]),
    Case(name: "rt_all_groups", topic: "MQTT_RT_DATA", sample: rtSample, config: allGroups,
         fields: base + [("active_power", "zyggl")] + phases),
    Case(name: "rt_router", topic: "MQTT_RT_DATA", sample: rtSample, config: plain, fields: base + [("active_power", "zyggl")], path: .router),
    Case(name: "rt_all_packs", topic: "MQTT_RT_DATA", sample: rtSample, config: plain, fields: base + [("active_power", "zyggl")], path: .packs),
]

/// Who runs the engines here (Home Assistant's `origin` in what they announce).
let benchOrigin = Origin(name: "engine-bench", version: "bench")

@MainActor func router(_ path: Path, config: String) -> PackRouter {
    do {
        let programs = path == .packs
            ? try Compiler.build(packs: [packs], config: config, shared: [:], readShared: { _, _ in }).programs
            : ProgramSet(single: program(config: config))
        // One pack: the router passes every message to its engine, which `.engine` calls directly.
        return PackRouter(programs: programs, origin: benchOrigin)
    } catch {
        print(error.description)
        exit(1)
    }
}

let now = Instant(epochMillis: 1_768_237_200_000)
var results: [String: (engine: Double, jansson: Double, simdjson: Double)] = [:]
print("engine-bench: \(Int(seconds * 1000)) ms per round, 3 rounds each, best round counts; simdjson \(SimdjsonProjection.implementation)")
for c in cases where only == nil || c.name == only {
    let engine = router(c.path, config: c.config)
    let single = engine.engines[0]
    let baseline = JanssonProjection(fields: c.fields)
    guard let simdjson = SimdjsonProjection(fields: c.fields) else {
        print("engine-bench: the simdjson baseline cannot run on this CPU (\(SimdjsonProjection.implementation) kernel)")
        exit(1)
    }
    var stream = Stream(c.sample)
    var out = ProcessOutput()

    // Same bytes out of both, checked once: the engine's values are the meter's text.
    stream.set(0)
    engine.process(topic: c.topic, payload: stream.bytes, now: now).messages.filter { $0.kind == .data }.first.map {
        print("  \(c.name) engine : \(String(decoding: $0.payload, as: UTF8.self))")
    }
    if let b = stream.bytes.withUnsafeBytes({ baseline.apply($0) }) {
        print("  \(c.name) jansson: \(String(decoding: b, as: UTF8.self))")
    }
    if let n = stream.bytes.withUnsafeBytes({ simdjson.apply($0) }) {
        print("  \(c.name) simdjson: \(String(decoding: simdjson.output(count: n), as: UTF8.self))")
    }

    var bestEngine = Double.infinity, bestJansson = Double.infinity, bestSimdjson = Double.infinity
    var offset = 1
    for _ in 0..<3 {
        let e = measure(seconds: seconds, messages: messages) { i in
            stream.set(offset + i)
            out.removeAll()
            if c.path == .engine {
                stream.bytes.withUnsafeBytes { single.process(topic: c.topic, payload: $0, now: now, into: &out) }
            } else {
                stream.bytes.withUnsafeBytes { engine.process(topic: c.topic, payload: $0, now: now, into: &out) }
            }
            return out.messages.count
        }
        offset += 10_000_000
        bestEngine = min(bestEngine, e.nsPerOp)
        if !skipped.contains("jansson") {
            let j = measure(seconds: seconds, messages: messages) { i in
                stream.set(offset + i)
                return stream.bytes.withUnsafeBytes { baseline.apply($0)?.count ?? 0 }
            }
            bestJansson = min(bestJansson, j.nsPerOp)
        }
        offset += 10_000_000
        if !skipped.contains("simdjson") {
            let sj = measure(seconds: seconds, messages: messages) { i in
                stream.set(offset + i)
                return stream.bytes.withUnsafeBytes { simdjson.apply($0) ?? 0 }
            }
            bestSimdjson = min(bestSimdjson, sj.nsPerOp)
        }
        offset += 10_000_000
    }
    results[c.name] = (bestEngine, bestJansson, bestSimdjson)
    print(String(format: "%-14@ engine %6.0f ns/msg (%9.0f msg/s)   jansson %6.0f ns/msg: engine %5.2fx   simdjson %6.0f ns/msg: engine %4.2fx",
                 c.name as NSString, bestEngine, 1e9 / bestEngine, bestJansson, bestJansson / bestEngine,
                 bestSimdjson, bestSimdjson / bestEngine))
}
if let rt = results["rt"] {
    print(String(format: "speedup_vs_jansson=%.2f speedup_vs_simdjson=%.2f rt_msgs_per_s=%.0f",
                 rt.jansson / rt.engine, rt.simdjson / rt.engine, 1e9 / rt.engine))
}
