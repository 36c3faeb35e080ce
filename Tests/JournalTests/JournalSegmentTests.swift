import Foundation
import Testing
@testable import Journal

/// Segment roll-over, deletion, back-pressure, out-of-order acknowledgements and the memory bound.
@Suite struct JournalSegmentTests {
    /// Small segments: several files; acknowledging everything deletes all but the one being written.
    @Test func segmentsRollOverAndAreDeleted() throws {
        try withTemporaryDirectory { dir in
            let journal = try Journal(directory: dir, maxBytes: 1 << 30, segmentBytes: 4 << 10, fsync: .never)
            let sequences = try appendRecords(journal, 0 ..< 500)
            let files = segmentFiles(dir)
            #expect(files.count >= 10)
            #expect(files.first == "00000000000000000001.seg")
            // Each segment starts with the sequence in its name and stays within one record of the limit.
            var total = 0
            for file in files {
                let bytes = try readFile(dir + "/" + file)
                total += bytes.count
                let first = UInt64(file.prefix(20))!
                let sequence = bytes[8 ..< 16].enumerated().reduce(UInt64(0)) { $0 | UInt64($1.element) << (8 * $1.offset) }
                #expect(sequence == first)
                #expect(bytes.count < (4 << 10) + 200)
            }
            #expect(journal.bytes == total)

            let records = try drain(journal)
            #expect(records.map(\.sequence) == sequences)
            for sequence in sequences.prefix(250) { journal.acknowledge(sequence) }
            let remaining = segmentFiles(dir)
            #expect(remaining.count < files.count && remaining.count > 1)
            #expect(UInt64(remaining[0].prefix(20))! <= 251, "the segment holding the watermark is kept")
            for sequence in sequences.dropFirst(250) { journal.acknowledge(sequence) }
            #expect(segmentFiles(dir) == [files.last!])
            try journal.persistAcknowledgements()
            journal.close()

            let reopened = try Journal(directory: dir, maxBytes: 1 << 30, segmentBytes: 4 << 10, fsync: .never)
            #expect(reopened.recovery.records == 0)
            #expect(reopened.append(topic: [], payload: [], retain: false, kind: 0, now: 0) == 501)
        }
    }

    /// Back-pressure: append until full, acknowledge, the segments go and the journal is no longer full.
    ///
    /// Cases: small segments; large segments (capped at a quarter of maxBytes); and a maxBytes below
    /// the smallest segment, where only starting an empty segment can end the back-pressure.
    @Test(arguments: [(32 << 10, 4 << 10), (32 << 10, 16 << 20), (2 << 10, 16 << 20)])
    func fullJournalRecovers(maxBytes: Int, segmentBytes: Int) throws {
        try withTemporaryDirectory { dir in
            let journal = try Journal(directory: dir, maxBytes: maxBytes, segmentBytes: segmentBytes, fsync: .never)
            var count = 0
            while !journal.isFull {
                try appendRecords(journal, count ..< count + 1, payloadSize: 600)
                count += 1
            }
            // Records are 645 to 650 bytes: full exactly when the bytes reach maxBytes.
            #expect(count >= maxBytes / 650 && count <= maxBytes / 645 + 1)
            #expect(journal.bytes >= maxBytes)
            // Appends still succeed when full.
            try appendRecords(journal, count ..< count + 5, payloadSize: 600)
            #expect(journal.unacknowledgedCount == count + 5)
            let filesWhenFull = segmentFiles(dir).count
            for record in try drain(journal) { journal.acknowledge(record.sequence) }
            #expect(!journal.isFull)
            #expect(journal.bytes < maxBytes)
            #expect(segmentFiles(dir).count == 1)
            #expect(filesWhenFull > 1 || maxBytes < 4096)
            try journal.persistAcknowledgements()
            // Sequences continue in the current segment, also after a restart.
            let next = try appendRecords(journal, 0 ..< 1)
            #expect(next == [UInt64(count + 6)])
            journal.close()
            let reopened = try Journal(directory: dir, maxBytes: maxBytes, segmentBytes: segmentBytes, fsync: .never)
            #expect(try drain(reopened).map(\.sequence) == next)
        }
    }

    /// Out-of-order acknowledgements: 3, 2, then 1 moves the watermark to 4.
    @Test func outOfOrderAcknowledgements() throws {
        try withTemporaryDirectory { dir in
            let journal = try openJournal(dir)
            try appendRecords(journal, 0 ..< 6)
            _ = try drain(journal)
            journal.acknowledge(3)
            journal.acknowledge(2)
            #expect(journal.watermark == 1)
            #expect(journal.unacknowledgedCount == 4)
            #expect(journal.oldestUnacknowledgedMilliseconds == testTime(0))
            journal.acknowledge(3)   // a duplicate changes nothing
            #expect(journal.unacknowledgedCount == 4)
            journal.acknowledge(1)
            #expect(journal.watermark == 4)
            #expect(journal.unacknowledgedCount == 3)
            #expect(journal.handedOutCount == 3)
            #expect(journal.oldestUnacknowledgedMilliseconds == testTime(3))
            journal.acknowledge(6)
            journal.acknowledge(5)
            journal.acknowledge(4)
            #expect(journal.watermark == 7)
            #expect(journal.unacknowledgedCount == 0)
            #expect(journal.oldestUnacknowledgedMilliseconds == nil)
        }
    }

    /// Reading a backlog of many segments keeps one read buffer of bounded size and at most one segment open.
    @Test func readingManySegmentsUsesBoundedMemory() throws {
        try withTemporaryDirectory { dir in
            do {
                let journal = try Journal(directory: dir, maxBytes: 1 << 30, segmentBytes: 64 << 10, fsync: .never)
                for batch in 0 ..< 100 { try appendRecords(journal, batch * 100 ..< batch * 100 + 100, payloadSize: 600) }
                journal.close()
            }
            #expect(segmentFiles(dir).count > 90)
            let journal = try Journal(directory: dir, maxBytes: 1 << 30, segmentBytes: 64 << 10, fsync: .never)
            #expect(journal.recovery.records == 10_000)
            // The directory's own descriptor and the ack file are open; segments come and go one at a time.
            let descriptors = openDescriptorCount(under: dir)
            #expect(descriptors >= 1)
            var count = 0, maxDescriptors = 0
            while let record = try journal.next() {
                count += 1
                if count % 500 == 0 {
                    maxDescriptors = max(maxDescriptors, openDescriptorCount(under: dir))
                    #expect(journal.readBufferCapacity == 256 << 10)
                }
                journal.acknowledge(record.sequence)
            }
            #expect(count == 10_000)
            #expect(maxDescriptors <= descriptors + 2, "reader and writer at most")
            #expect(segmentFiles(dir).count == 1)

            // A record larger than the buffer grows it for that record only.
            let big = journal.append(topic: [1], payload: [UInt8](repeating: 7, count: 1 << 20), retain: false, kind: 0, now: 0)
            try appendRecords(journal, 0 ..< 1)
            #expect(try journal.next()?.payload.count == 1 << 20)
            journal.acknowledge(big)
            #expect(try journal.next() != nil)
            #expect(journal.readBufferCapacity == 256 << 10)
        }
    }

    /// `maxBytes` can change at run time.
    @Test func maxBytesCanChange() throws {
        try withTemporaryDirectory { dir in
            let journal = try openJournal(dir)
            try appendRecords(journal, 0 ..< 10)
            #expect(!journal.isFull)
            journal.maxBytes = 100
            #expect(journal.isFull)
        }
    }
}
