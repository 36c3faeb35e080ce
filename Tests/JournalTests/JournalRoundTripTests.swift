import Foundation
import Testing
@testable import Journal

/// Appending, reading back, acknowledging and restarting.
@Suite struct JournalRoundTripTests {
    /// `nextBorrowed` hands out every record, in order and intact, without
    /// copying (what the proxy publishes from); each stays readable until the next read.
    @Test func borrowedRecordsAreTheRecords() throws {
        try withTemporaryDirectory { dir in
            let journal = try openJournal(dir)
            let sequences = try appendRecords(journal, 0..<50)
            var i = 0
            while let borrowed = try journal.nextBorrowed() {
                #expect(borrowed.sequence == sequences[i])
                #expect(Array(borrowed.topic) == testTopic(i) && Array(borrowed.payload) == testPayload(i, size: 64))
                expectRecord(borrowed.copied, isTestRecord: i)
                i += 1
            }
            #expect(i == 50)
            #expect(journal.handedOutCount == 50)
            for sequence in sequences { journal.acknowledge(sequence) }
            #expect(journal.unacknowledgedCount == 0)
        }
    }

    /// Appends, flushes, reads, acknowledgements and rewinds in a random order
    /// against a model: `nextBorrowed` hands out exactly the lowest flushed,
    /// unacknowledged record past the last one it handed out or skipped, and
    /// nil when there is none (also when the reader is at its end and only
    /// unflushed records wait, which it answers without reading).
    @Test(arguments: [1, 2, 3, 4] as [UInt64])
    func readsFollowAModelOfFlushesAndAcknowledgements(seed: UInt64) throws {
        try withTemporaryDirectory { dir in
            let journal = try Journal(directory: dir, maxBytes: 1 << 30, segmentBytes: 4096, fsync: .never)
            var random = seed &* 0x9E37_79B9_7F4A_7C15
            func below(_ n: Int) -> Int {
                random = random &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
                return Int((random >> 33) % UInt64(n))
            }
            var appended: [UInt64: Int] = [:]  // sequence → test record
            var flushed = Set<UInt64>(), acknowledged = Set<UInt64>(), handedEver = Set<UInt64>()
            var unflushed: [UInt64] = []
            var cursor: UInt64 = 0
            var index = 0
            for _ in 0..<3000 {
                switch below(10) {
                case 0, 1, 2:
                    let sequence = journal.append(topic: testTopic(index), payload: testPayload(index), retain: index % 2 == 0,
                                                  kind: UInt8(index % 3), now: testTime(index))
                    appended[sequence] = index
                    unflushed.append(sequence)
                    index += 1
                case 3:
                    try journal.flush()
                    flushed.formUnion(unflushed)
                    unflushed.removeAll()
                case 4, 5, 6:
                    let expected = flushed.filter { $0 >= cursor && !acknowledged.contains($0) }.min()
                    let got = try journal.nextBorrowed()
                    #expect(got?.sequence == expected, "seed \(seed)")
                    guard let got, let expected, got.sequence == expected else { continue }
                    #expect(Array(got.topic) == testTopic(appended[expected]!))
                    cursor = expected + 1
                    handedEver.insert(expected)
                case 7, 8:
                    let candidates = handedEver.subtracting(acknowledged).sorted()
                    guard !candidates.isEmpty else { continue }
                    let sequence = candidates[below(candidates.count)]
                    journal.acknowledge(sequence)
                    acknowledged.insert(sequence)
                default:
                    if below(4) == 0 {
                        journal.rewind()
                        cursor = 0
                    }
                }
            }
            try journal.flush()
            flushed.formUnion(unflushed)
            // What is left comes out in order, then nil.
            let rest = flushed.filter { $0 >= cursor && !acknowledged.contains($0) }.sorted()
            var got: [UInt64] = []
            while let record = try journal.nextBorrowed() { got.append(record.sequence) }
            #expect(got == rest, "seed \(seed)")
        }
    }

    /// Everything appended comes back once, in order, with every field intact.
    @Test func appendFlushNextAcknowledge() throws {
        try withTemporaryDirectory { dir in
            let journal = try openJournal(dir)
            #expect(journal.recovery == JournalRecovery())
            let sequences = try (0..<100).flatMap { batch in try appendRecords(journal, batch * 10 ..< batch * 10 + 10) }
            #expect(zip(sequences, sequences.dropFirst()).allSatisfy { $0 + 1 == $1 })
            #expect(!journal.hasUnflushed)
            #expect(journal.unacknowledgedCount == 1000)

            let records = try drain(journal)
            #expect(records.map(\.sequence) == sequences)
            for (i, record) in records.enumerated() { expectRecord(record, isTestRecord: i) }
            #expect(journal.handedOutCount == 1000)
            #expect(try journal.next() == nil)

            for sequence in sequences { journal.acknowledge(sequence) }
            #expect(journal.unacknowledgedCount == 0)
            #expect(journal.handedOutCount == 0)
            #expect(journal.watermark == sequences.last! + 1)
            #expect(journal.oldestUnacknowledgedMilliseconds == nil)
        }
    }

    /// Unflushed records are not handed out; the raw-buffer append stores the same bytes.
    @Test func onlyFlushedRecordsAreHandedOut() throws {
        try withTemporaryDirectory { dir in
            let journal = try Journal(directory: dir, maxBytes: 1 << 30, fsync: .always)
            let topic = testTopic(5), payload = testPayload(5)
            let sequence = topic.withUnsafeBytes { t in
                payload.withUnsafeBytes { p in journal.append(topic: t, payload: p, retain: false, kind: 2, now: 42) }
            }
            #expect(journal.hasUnflushed)
            #expect(journal.bytes > 0)
            #expect(try journal.next() == nil)
            #expect(journal.oldestUnacknowledgedMilliseconds == 42)
            try journal.flush()
            let record = try #require(try journal.next())
            #expect(record == JournalRecord(sequence: sequence, appendedAtMilliseconds: 42, kind: 2, retain: false,
                                            topic: topic, payload: payload))
            // Empty topic and payload are legal records.
            let empty = journal.append(topic: [], payload: [], retain: true, kind: 0, now: -1)
            try journal.flush()
            #expect(try journal.next() == JournalRecord(sequence: empty, appendedAtMilliseconds: -1, kind: 0, retain: true,
                                                        topic: [], payload: []))
        }
    }

    /// Acknowledge 300 of 1,000, persist, restart: 301…1000 come back in order, new appends continue at 1001.
    @Test func restartReplaysUnacknowledgedInOrder() throws {
        try withTemporaryDirectory { dir in
            do {
                let journal = try Journal(directory: dir, maxBytes: 1 << 30, segmentBytes: 16 << 10, fsync: .interval(milliseconds: 100))
                let sequences = try appendRecords(journal, 0 ..< 1000)
                #expect(sequences.first == 1 && sequences.last == 1000)
                _ = try drain(journal)
                for sequence in sequences.prefix(300) { journal.acknowledge(sequence) }
                try journal.persistAcknowledgements()
                journal.close()
            }
            let journal = try Journal(directory: dir, maxBytes: 1 << 30, segmentBytes: 16 << 10, fsync: .interval(milliseconds: 100))
            #expect(journal.recovery.records == 700)
            #expect(journal.recovery.droppedBytes == 0 && journal.recovery.notes.isEmpty)
            #expect(journal.unacknowledgedCount == 700)
            #expect(journal.watermark == 301)
            #expect(journal.oldestUnacknowledgedMilliseconds == testTime(300))
            let replayed = try drain(journal)
            #expect(replayed.map(\.sequence) == Array(301...1000))
            for record in replayed { expectRecord(record, isTestRecord: Int(record.sequence) - 1) }
            #expect(journal.append(topic: [1], payload: [2], retain: false, kind: 0, now: 0) == 1001)
        }
    }

    /// A process that dies after `flush` keeps what it flushed and nothing else; sequences are not reused.
    @Test func crashAfterFlushKeepsFlushedRecords() throws {
        try withTemporaryDirectory { dir in
            // The first journal is never closed: a second one opens the directory as a restarted process would.
            let crashed = try openJournal(dir)
            try appendRecords(crashed, 0 ..< 50)
            crashed.append(topic: [1], payload: [2], retain: false, kind: 0, now: 0)   // never flushed
            let restarted = try openJournal(dir)
            #expect(restarted.recovery.records == 50)
            #expect(try drain(restarted).map(\.sequence) == Array(1...50))
            withExtendedLifetime(crashed) {}
        }
    }

    /// Everything acknowledged and persisted, restart: nothing is replayed and sequences go on.
    @Test func restartAfterEverythingAcknowledged() throws {
        try withTemporaryDirectory { dir in
            do {
                let journal = try openJournal(dir)
                for sequence in try appendRecords(journal, 0 ..< 10) { journal.acknowledge(sequence) }
                #expect(journal.unacknowledgedCount == 10, "acknowledging records not handed out is ignored")
                for record in try drain(journal) { journal.acknowledge(record.sequence) }
                try journal.persistAcknowledgements()
                journal.close()
            }
            let journal = try openJournal(dir)
            #expect(journal.recovery.records == 0)
            #expect(try journal.next() == nil)
            #expect(journal.append(topic: [1], payload: [], retain: false, kind: 0, now: 0) == 11)
        }
    }

    /// rewind hands out every unacknowledged record again, skipping the acknowledged ones.
    @Test func rewindHandsOutUnacknowledgedAgain() throws {
        try withTemporaryDirectory { dir in
            let journal = try Journal(directory: dir, maxBytes: 1 << 30, segmentBytes: 4 << 10, fsync: .never)
            try appendRecords(journal, 0 ..< 200)
            let first = try drain(journal)
            #expect(first.count == 200)
            journal.acknowledge(1)
            journal.acknowledge(2)
            journal.acknowledge(5)
            journal.rewind()
            #expect(journal.handedOutCount == 0)
            let again = try drain(journal)
            #expect(again.map(\.sequence) == [3, 4] + Array(6...200))
            #expect(journal.handedOutCount == 197)
            #expect(journal.oldestUnacknowledgedMilliseconds == testTime(2))
            // A late acknowledgement of a record handed out before the rewind still counts.
            journal.rewind()
            journal.acknowledge(150)
            #expect(journal.unacknowledgedCount == 196)
            #expect(try drain(journal).count == 196)
        }
    }

    /// fsync policies change durability only: the same records come back under each.
    @Test(arguments: [JournalFsync.never, .interval(milliseconds: 0), .interval(milliseconds: 60_000), .always])
    func everyFsyncPolicyRoundTrips(policy: JournalFsync) throws {
        try withTemporaryDirectory { dir in
            do {
                let journal = try Journal(directory: dir, maxBytes: 1 << 30, segmentBytes: 2 << 10, fsync: policy)
                try appendRecords(journal, 0 ..< 100)
                for record in try drain(journal).prefix(40) { journal.acknowledge(record.sequence) }
                try journal.persistAcknowledgements()
                journal.close()
            }
            let journal = try Journal(directory: dir, maxBytes: 1 << 30, segmentBytes: 2 << 10, fsync: policy)
            #expect(try drain(journal).map(\.sequence) == Array(41...100))
        }
    }

    /// A system call failure names the path; a directory that cannot exist is one.
    @Test func ioErrorNamesThePath() throws {
        try withTemporaryDirectory { dir in
            try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
            try writeFile(dir + "/file", [1])
            #expect {
                _ = try Journal(directory: dir + "/file/journal", maxBytes: 1 << 20, fsync: .never)
            } throws: { error in
                guard let error = error as? JournalError else { return false }
                return error.errno == ENOTDIR && error.path.hasPrefix(dir + "/file") && error.description.contains(dir)
            }
        }
    }
}

