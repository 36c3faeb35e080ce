import Foundation
import Testing
@testable import Journal

/// Recovery at open: torn tails, corruption, the ack file's slots.
@Suite struct JournalRecoveryTests {
    /// The last segment cut in the middle of a record: the complete records survive, appends go on.
    @Test func tornTailTruncatedMidRecord() throws {
        try withTemporaryDirectory { dir in
            try writeRecords(dir, 0 ..< 20)
            let path = dir + "/" + segmentFiles(dir).last!
            let bytes = try readFile(path)
            let lastFrame = frameOffsets(bytes).last!
            try writeFile(path, Array(bytes[..<(lastFrame + 30)]))

            do {
                let journal = try openJournal(dir)
                #expect(journal.recovery.tornTailBytes == 30)
                #expect(journal.recovery.droppedBytes == 30)
                #expect(journal.recovery.corruptRecords == 0)
                #expect(journal.recovery.records == 19)
                #expect(journal.recovery.notes.count == 1)
                #expect(try readFile(path).count == lastFrame, "the torn bytes are cut from the file")
                #expect(try drain(journal).map(\.sequence) == Array(1...19))
                // The torn record's sequence is never assigned again.
                #expect(try appendRecords(journal, 100 ..< 105) == Array(21...25))
                journal.close()
            }
            let journal = try openJournal(dir)
            #expect(journal.recovery.droppedBytes == 0)
            let records = try drain(journal)
            #expect(records.map(\.sequence) == Array(1...19) + Array(21...25))
            expectRecord(records.last!, isTestRecord: 104)
        }
    }

    /// Garbage after the last complete record (random bytes, then zeros as a power loss leaves them) is a torn tail.
    @Test(arguments: [[UInt8](repeating: 0, count: 4096), (0..<100).map { UInt8(truncatingIfNeeded: $0 &* 77 &+ 200) }])
    func tornTailGarbageAppended(garbage: [UInt8]) throws {
        try withTemporaryDirectory { dir in
            try writeRecords(dir, 0 ..< 20)
            let path = dir + "/" + segmentFiles(dir).last!
            let bytes = try readFile(path)
            try writeFile(path, bytes + garbage)
            do {
                let journal = try openJournal(dir)
                #expect(journal.recovery.tornTailBytes == garbage.count)
                #expect(journal.recovery.corruptRecords == 0)
                #expect(try readFile(path) == bytes)
                #expect(try drain(journal).count == 20)
                #expect(try appendRecords(journal, 20 ..< 30) == Array(22...31))
                journal.close()
            }
            let journal = try openJournal(dir)
            #expect(journal.recovery.droppedBytes == 0)
            #expect(try drain(journal).map(\.sequence) == Array(1...20) + Array(22...31))
        }
    }

    /// A flipped byte in a middle segment costs that record: the records before and after it
    /// survive (those after it in a segment of their own), delivered across the one-record gap.
    @Test func badChecksumInMiddleSegment() throws {
        try withTemporaryDirectory { dir in
            var perSegment: [Int] = []
            do {
                let journal = try Journal(directory: dir, maxBytes: 1 << 30, segmentBytes: 4 << 10, fsync: .never)
                try appendRecords(journal, 0 ..< 300)
                journal.close()
            }
            let files = segmentFiles(dir)
            #expect(files.count >= 3)
            for file in files { perSegment.append(frameOffsets(try readFile(dir + "/" + file)).count) }
            // Damage record 10 of the first segment (its topic bytes), leaving its length intact.
            let path = dir + "/" + files[0]
            var bytes = try readFile(path)
            let target = frameOffsets(bytes)[10]
            bytes[target + 8 + 22] ^= 0x40
            try writeFile(path, bytes)

            let journal = try Journal(directory: dir, maxBytes: 1 << 30, segmentBytes: 4 << 10, fsync: .never)
            #expect(journal.recovery.corruptRecords == 1)
            #expect(journal.recovery.tornTailBytes == 0)
            #expect(journal.recovery.droppedBytes == frameOffsets(bytes)[11] - target)
            #expect(journal.recovery.notes.contains { $0.contains("checksum") })
            #expect(journal.recovery.notes.contains { $0.contains("missing") })
            #expect(try readFile(path).count == target)
            #expect(segmentFiles(dir) == (files + [JournalSegment.fileName(first: 12)]).sorted(), "records 12… moved to a segment of their own")
            #expect(journal.recovery.records == 299)
            let records = try drain(journal)
            #expect(records.map(\.sequence) == Array(1...10) + Array(12...300))
            for record in records { expectRecord(record, isTestRecord: Int(record.sequence) - 1) }
            // The watermark steps over the gap.
            for sequence in 1...10 { journal.acknowledge(UInt64(sequence)) }
            #expect(journal.watermark == 12)
            #expect(segmentFiles(dir).count == files.count, "the damaged segment's first part is acknowledged and deleted")
            // Sequences continue after the highest one present.
            #expect(journal.append(topic: [], payload: [], retain: false, kind: 0, now: 0) == 301)
        }
    }

    /// A corrupt record in the last segment that is complete (bad checksum) counts as corruption, not
    /// a torn tail, and costs that record only.
    @Test func badChecksumInLastSegment() throws {
        try withTemporaryDirectory { dir in
            try writeRecords(dir, 0 ..< 10)
            let path = dir + "/" + segmentFiles(dir)[0]
            var bytes = try readFile(path)
            let target = frameOffsets(bytes)[4]
            bytes[target + 8 + 3] ^= 0x01   // inside the sequence field
            try writeFile(path, bytes)
            let journal = try openJournal(dir)
            #expect(journal.recovery.corruptRecords == 1)
            #expect(journal.recovery.tornTailBytes == 0)
            #expect(try drain(journal).map(\.sequence) == [1, 2, 3, 4, 6, 7, 8, 9, 10])
            #expect(journal.append(topic: [], payload: [], retain: false, kind: 0, now: 0) == 11)
        }
    }

    /// A record with a valid checksum but the wrong sequence is cut too; the one after it is kept.
    @Test func wrongSequenceIsCorrupt() throws {
        try withTemporaryDirectory { dir in
            try writeRecords(dir, 0 ..< 3)
            let path = dir + "/" + segmentFiles(dir)[0]
            var bytes = try readFile(path)
            let offsets = frameOffsets(bytes)
            // Make record 2 claim sequence 7 and give it a matching checksum.
            let bodyStart = offsets[1] + 8
            bytes[bodyStart] = 7
            let crc = bytes[bodyStart ..< offsets[2]].withContiguousStorageIfAvailable { CRC32C.checksum(UnsafeRawBufferPointer($0)) }!
            for k in 0..<4 { bytes[offsets[1] + 4 + k] = UInt8(truncatingIfNeeded: crc >> (8 * k)) }
            try writeFile(path, bytes)
            let journal = try openJournal(dir)
            #expect(journal.recovery.corruptRecords == 1)
            #expect(journal.recovery.notes.contains { $0.contains("sequence 7") })
            #expect(try drain(journal).map(\.sequence) == [1, 3])
            #expect(journal.append(topic: [], payload: [], retain: false, kind: 0, now: 0) == 4)
        }
    }

    /// One flipped bit among 1,500 records in 64 KiB segments costs one record, not the rest of its
    /// segment; a restart after that finds nothing more to cut, and no sequence is assigned twice.
    @Test func oneFlippedBitCostsOneRecord() throws {
        try withTemporaryDirectory { dir in
            do {
                let journal = try Journal(directory: dir, maxBytes: 1 << 30, segmentBytes: 64 << 10, fsync: .never)
                try appendRecords(journal, 0 ..< 1500, payloadSize: 200)
                journal.close()
            }
            let files = segmentFiles(dir)
            let path = dir + "/" + files[0]
            var bytes = try readFile(path)
            let offsets = frameOffsets(bytes)
            #expect(offsets.count > 200)
            bytes[offsets[100] + 8 + 60] ^= 0x08
            try writeFile(path, bytes)
            do {
                let journal = try Journal(directory: dir, maxBytes: 1 << 30, segmentBytes: 64 << 10, fsync: .never)
                #expect(journal.recovery.corruptRecords == 1)
                #expect(journal.recovery.records == 1499)
                let records = try drain(journal)
                #expect(records.map(\.sequence) == Array(1...100) + Array(102...1500))
                for record in records { expectRecord(record, isTestRecord: Int(record.sequence) - 1, payloadSize: 200) }
                #expect(journal.append(topic: [], payload: [], retain: false, kind: 0, now: 0) == 1501)
                try journal.flush()
                journal.close()
            }
            let journal = try Journal(directory: dir, maxBytes: 1 << 30, segmentBytes: 64 << 10, fsync: .never)
            #expect(journal.recovery.droppedBytes == 0)
            #expect(journal.recovery.corruptRecords == 0)
            #expect(try drain(journal).map(\.sequence) == Array(1...100) + Array(102...1501))
        }
    }

    /// An impossible length in the middle of the last segment is corruption, not a torn tail:
    /// the records after it are found again.
    @Test func badLengthInTheMiddleResyncs() throws {
        try withTemporaryDirectory { dir in
            try writeRecords(dir, 0 ..< 10)
            let path = dir + "/" + segmentFiles(dir)[0]
            var bytes = try readFile(path)
            let offsets = frameOffsets(bytes)
            bytes[offsets[3] + 3] = 0xFF   // length above 16 MiB
            try writeFile(path, bytes)
            let journal = try openJournal(dir)
            #expect(journal.recovery.tornTailBytes == 0)
            #expect(journal.recovery.corruptRecords == 1)
            #expect(journal.recovery.droppedBytes == offsets[4] - offsets[3])
            #expect(try drain(journal).map(\.sequence) == [1, 2, 3, 5, 6, 7, 8, 9, 10])
        }
    }

    /// A crash after the split's copy got its name but before the original was cut: the next
    /// recovery cuts it and keeps one copy of each record; a copy never linked is deleted.
    @Test func interruptedSplitIsFinished() throws {
        try withTemporaryDirectory { dir in
            try writeRecords(dir, 0 ..< 30)
            let path = dir + "/" + segmentFiles(dir)[0]
            var bytes = try readFile(path)
            bytes[frameOffsets(bytes)[10] + 8 + 30] ^= 0x01
            try writeFile(path, bytes)
            do {
                let journal = try openJournal(dir)
                #expect(try drain(journal).count == 29)
                journal.close()
            }
            // The state of a crash before the cut, and of one before the link.
            try writeFile(path, bytes)
            try writeFile(dir + "/" + JournalSegment.fileName(first: 40) + ".split", [1, 2, 3])
            let journal = try openJournal(dir)
            #expect(journal.recovery.corruptRecords == 1)
            let records = try drain(journal)
            #expect(records.map(\.sequence) == Array(1...10) + Array(12...30))
            for record in records { expectRecord(record, isTestRecord: Int(record.sequence) - 1) }
            #expect(segmentFiles(dir) == [JournalSegment.fileName(first: 1), JournalSegment.fileName(first: 12)])
            #expect(!(try FileManager.default.contentsOfDirectory(atPath: dir)).contains { $0.hasSuffix(".split") })
        }
    }

    /// A torn write of the newest ack slot falls back to the other slot: duplicates, never loss.
    @Test func tornAckSlotFallsBackToTheOtherSlot() throws {
        try withTemporaryDirectory { dir in
            do {
                let journal = try openJournal(dir)
                try appendRecords(journal, 0 ..< 20)
                _ = try drain(journal)
                for sequence in 1...5 { journal.acknowledge(UInt64(sequence)) }
                try journal.persistAcknowledgements()          // generation 1 → slot B: watermark 6
                for sequence in 6...10 { journal.acknowledge(UInt64(sequence)) }
                try journal.persistAcknowledgements()          // generation 2 → slot A: watermark 11
                try journal.persistAcknowledgements()          // not dirty: writes nothing
                journal.close()
            }
            let ackPath = dir + "/ack"
            var ack = try readFile(ackPath)
            #expect(ack.count == 52)
            do {
                let journal = try openJournal(dir)
                #expect(journal.watermark == 11)
                journal.close()
            }
            ack[3] ^= 0xFF   // slot A, the newest, torn
            try writeFile(ackPath, ack)
            do {
                let journal = try openJournal(dir)
                #expect(journal.watermark == 6)
                #expect(journal.recovery.notes.contains { $0.contains("slot A") })
                #expect(try drain(journal).map(\.sequence) == Array(6...20))
                journal.close()
            }
            // Both slots unreadable: everything present is delivered again.
            try writeFile(ackPath, [UInt8](repeating: 0x55, count: 52))
            let journal = try openJournal(dir)
            #expect(journal.watermark == 1)
            #expect(try drain(journal).count == 20)
        }
    }
}
