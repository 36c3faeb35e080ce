import Foundation
import Testing
@testable import Journal

/// A fresh directory under the system temp directory, removed when the test's closure returns.
func withTemporaryDirectory<T>(_ body: (String) throws -> T) throws -> T {
    let base = ProcessInfo.processInfo.environment["TMPDIR"].flatMap { $0.isEmpty ? nil : $0 } ?? "/tmp"
    var template = Array((base + "/journal-test-XXXXXX").utf8CString)
    let path = try template.withUnsafeMutableBufferPointer { buffer -> String in
        guard let made = mkdtemp(buffer.baseAddress!) else { throw POSIXError(.EIO) }
        return String(cString: made)
    }
    defer { try? FileManager.default.removeItem(atPath: path) }
    // The journal lives one level down, so that init has to create its directory.
    return try body(path + "/journal")
}

/// The record `i` of a test stream: topic and payload derived from `i`, so a mix-up shows.
func testTopic(_ i: Int) -> [UInt8] { Array("kpm33b/meter-\(i % 97)/data".utf8) }
func testPayload(_ i: Int, size: Int = 64) -> [UInt8] { (0..<size).map { UInt8(truncatingIfNeeded: i &* 31 &+ $0) } }

/// Appends records `range` (topic/payload from the index) and flushes; returns their sequences.
@discardableResult
func appendRecords(_ journal: Journal, _ range: Range<Int>, payloadSize: Int = 64) throws -> [UInt64] {
    let sequences = range.map { i in
        journal.append(topic: testTopic(i), payload: testPayload(i, size: payloadSize), retain: i % 2 == 0,
                       kind: UInt8(i % 3), now: testTime(i))
    }
    try journal.flush()
    return sequences
}

/// The journal in `dir` as a restarted proxy opens it: 1 GiB, no fsync.
func openJournal(_ dir: String) throws -> Journal {
    try Journal(directory: dir, maxBytes: 1 << 30, fsync: .never)
}

/// Records `range` written to the journal in `dir` by a process that then stopped.
func writeRecords(_ dir: String, _ range: Range<Int>) throws {
    let journal = try openJournal(dir)
    try appendRecords(journal, range)
    journal.close()
}

/// Everything `next()` hands out now.
func drain(_ journal: Journal) throws -> [JournalRecord] {
    var records: [JournalRecord] = []
    while let record = try journal.next() { records.append(record) }
    return records
}

/// Checks that `record` is test record `i`.
func expectRecord(_ record: JournalRecord, isTestRecord i: Int, payloadSize: Int = 64,
                  sourceLocation: SourceLocation = #_sourceLocation) {
    #expect(record.topic == testTopic(i), sourceLocation: sourceLocation)
    #expect(record.payload == testPayload(i, size: payloadSize), sourceLocation: sourceLocation)
    #expect(record.retain == (i % 2 == 0), sourceLocation: sourceLocation)
    #expect(record.kind == UInt8(i % 3), sourceLocation: sourceLocation)
    #expect(record.appendedAtMilliseconds == testTime(i), sourceLocation: sourceLocation)
}

/// Segment file names in `directory`, sorted.
func segmentFiles(_ directory: String) -> [String] {
    ((try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []).filter { $0.hasSuffix(".seg") }.sorted()
}

/// The bytes of a file.
func readFile(_ path: String) throws -> [UInt8] {
    [UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))
}

/// Replaces a file's bytes.
func writeFile(_ path: String, _ bytes: [UInt8]) throws {
    try Data(bytes).write(to: URL(fileURLWithPath: path))
}

/// Frame offsets of the records in a segment file, from the length fields.
func frameOffsets(_ bytes: [UInt8]) -> [Int] {
    var offsets: [Int] = []
    var offset = 0
    while offset + 8 <= bytes.count {
        offsets.append(offset)
        let length = Int(bytes[offset]) | Int(bytes[offset + 1]) << 8 | Int(bytes[offset + 2]) << 16 | Int(bytes[offset + 3]) << 24
        offset += 8 + length
    }
    return offsets
}

/// Open file descriptors of this process on files inside `directory` (tests run in parallel,
/// so the process-wide count would include other tests' files).
func openDescriptorCount(under directory: String) -> Int {
    let fds = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd")) ?? []
    return fds.filter { fd in
        ((try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/fd/" + fd)) ?? "").hasPrefix(directory + "/")
    }.count
}

/// The append time of test record `i`.
func testTime(_ i: Int) -> Int64 { 1_700_000_000_000 + Int64(i) }
