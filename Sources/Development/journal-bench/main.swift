import Glibc
import Journal

// journal-bench: what the journal costs per message, against an in-memory queue, in one run.
//
//   swift run -c release journal-bench [--count N] [--always-count N]
//
// Each message is a 30-byte topic and a 600-byte payload. The loop is the proxy's:
// append a batch of 64, flush, hand each record out with next(), acknowledge it,
// persist the acknowledgements once per batch. The baseline runs the same loop on
// an array of records (copy in at append, hand out, drop at acknowledge), so the
// difference is what durability costs. Journals live in a fresh directory under
// $TMPDIR (or /tmp) that is deleted afterwards.

var count = 1_000_000
var alwaysCount = 20_000
var arguments = CommandLine.arguments.dropFirst()
while let argument = arguments.popFirst() {
    switch argument {
    case "--count": count = Int(arguments.popFirst() ?? "") ?? count
    case "--always-count": alwaysCount = Int(arguments.popFirst() ?? "") ?? alwaysCount
    default:
        print("usage: journal-bench [--count N] [--always-count N]")
        exit(2)
    }
}

let batchSize = 64
let topic = Array("kpm33b/33B1225950027/rt/data/x".utf8)
let payloadTemplate = [UInt8](repeating: UInt8(ascii: "7"), count: 600)
/// Bytes of one record on disk: frame header, body header, topic, payload.
let frameBytes = 8 + 20 + topic.count + payloadTemplate.count

func nanoseconds() -> Int64 {
    var now = timespec()
    clock_gettime(CLOCK_MONOTONIC, &now)
    return Int64(now.tv_sec) * 1_000_000_000 + Int64(now.tv_nsec)
}

/// A fresh directory for one run.
func temporaryDirectory() -> String {
    var base = getenv("TMPDIR").map { String(cString: $0) } ?? "/tmp"
    if base.isEmpty { base = "/tmp" }
    var template = Array((base + "/journal-bench-XXXXXX").utf8CString)
    guard let made = mkdtemp(&template) else {
        print("journal-bench: cannot create a directory under \(base)")
        exit(1)
    }
    return String(cString: made)
}

/// Deletes `path` and the files in it (the journal directory is flat).
func removeTree(_ path: String) {
    if let dir = opendir(path) {
        while let entry = readdir(dir) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { String(cString: $0.baseAddress!.assumingMemoryBound(to: CChar.self)) }
            if name == "." || name == ".." { continue }
            let child = path + "/" + name
            if entry.pointee.d_type == UInt8(DT_DIR) { removeTree(child) } else { unlink(child) }
        }
        closedir(dir)
    }
    rmdir(path)
}

/// The in-memory stand-in: a queue of records with their own copies of the bytes.
func runBaseline(_ n: Int) -> Int64 {
    var queue: [JournalRecord] = []
    queue.reserveCapacity(batchSize)
    var payload = payloadTemplate
    var handed = 0, sequence: UInt64 = 0, checksum = 0
    let start = nanoseconds()
    var i = 0
    while i < n {
        let batch = min(batchSize, n - i)
        for k in 0..<batch {
            sequence += 1
            payload[0] = UInt8(truncatingIfNeeded: i + k)
            queue.append(JournalRecord(sequence: sequence, appendedAtMilliseconds: Int64(i + k), kind: 0, retain: false,
                                       topic: topic.withUnsafeBytes { Array($0) }, payload: payload.withUnsafeBytes { Array($0) }))
        }
        while handed < queue.count {
            let record = queue[handed]
            handed += 1
            checksum &+= Int(record.payload[0]) &+ record.topic.count
        }
        queue.removeAll(keepingCapacity: true)   // acknowledged
        handed = 0
        i += batch
    }
    let elapsed = nanoseconds() - start
    if checksum == 42 { print("") }   // keeps the reads alive
    return elapsed
}

/// The proxy's loop on a real journal; returns the elapsed nanoseconds.
func runJournal(_ n: Int, fsync: JournalFsync) -> Int64 {
    let dir = temporaryDirectory()
    defer { removeTree(dir) }
    do {
        let journal = try Journal(directory: dir + "/journal", maxBytes: 1 << 40, fsync: fsync)
        defer { journal.close() }
        var payload = payloadTemplate
        var checksum = 0
        let start = nanoseconds()
        var i = 0
        while i < n {
            let batch = min(batchSize, n - i)
            for k in 0..<batch {
                payload[0] = UInt8(truncatingIfNeeded: i + k)
                journal.append(topic: topic, payload: payload, retain: false, kind: 0, now: Int64(i + k))
            }
            try journal.flush()
            while let record = try journal.next() {
                checksum &+= Int(record.payload[0]) &+ record.topic.count
                journal.acknowledge(record.sequence)
            }
            try journal.persistAcknowledgements()
            i += batch
        }
        let elapsed = nanoseconds() - start
        precondition(journal.unacknowledgedCount == 0 && checksum != 42)
        return elapsed
    } catch {
        print("journal-bench: \(error)")
        exit(1)
    }
}

func report(_ name: String, _ n: Int, _ elapsed: Int64, baseline: Double? = nil) {
    let perMessage = Double(elapsed) / Double(n)
    let megabytesPerSecond = Double(n * frameBytes) / (Double(elapsed) / 1e9) / 1e6
    var line = "\(name): \(n) messages, \(format(perMessage)) ns/message, \(format(megabytesPerSecond)) MB/s"
    if let baseline { line += ", journal costs \(format(perMessage - baseline)) ns/message over the baseline" }
    print(line)
}

func format(_ value: Double) -> String {
    let tenths = Int((value * 10).rounded())
    return "\(tenths / 10).\(abs(tenths % 10))"
}

print("journal-bench: \(topic.count)-byte topic, \(payloadTemplate.count)-byte payload, \(frameBytes) bytes per record, batches of \(batchSize)")
// Warm up page cache, allocator and CRC tables; then the best of three rounds per figure.
_ = runBaseline(count / 10)
_ = runJournal(count / 10, fsync: .never)
func best(_ rounds: Int, _ run: () -> Int64) -> Int64 { (0..<rounds).map { _ in run() }.min()! }
let baseline = best(3) { runBaseline(count) }
let baselinePerMessage = Double(baseline) / Double(count)
report("baseline (in-memory array)", count, baseline)
report("journal fsync never", count, best(3) { runJournal(count, fsync: .never) }, baseline: baselinePerMessage)
report("journal fsync interval 100 ms", count, best(3) { runJournal(count, fsync: .interval(milliseconds: 100)) }, baseline: baselinePerMessage)
report("journal fsync always", alwaysCount, runJournal(alwaysCount, fsync: .always), baseline: baselinePerMessage)
