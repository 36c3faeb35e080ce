import Glibc

/// A crash-safe, append-only journal of outgoing messages on disk.
///
/// The proxy appends every outgoing message before it acknowledges the incoming one,
/// and removes it (`acknowledge`) when the central broker acknowledged it. After a
/// restart, `next()` hands out everything not yet acknowledged, in order, before new
/// records.
///
/// **One thread.** All methods must be called from the same thread (the event loop);
/// there are no locks and the class is deliberately not `Sendable`.
///
/// **Why no fsync for crashes.** Data given to `write(2)` is in the kernel's page cache,
/// which belongs to the file and survives the death of the process, SIGKILL included.
/// So `flush()` before acknowledging input is enough to never lose a message when the
/// process dies; `JournalFsync` only decides what survives a power loss.
///
/// ## On-disk format
///
/// A directory holds segment files and one `ack` file; other files are ignored.
///
/// - **Segments** are named `<first sequence, 20 digits zero-padded>.seg` and hold
///   consecutive records: the first record's sequence is the name, each next one is +1.
///   A new segment is started before the record that would be appended to a segment that
///   already reached `segmentBytes` (or a quarter of `maxBytes` if that is smaller), so a
///   record never spans segments and a segment exceeds that size by less than one record.
/// - **Record** (all integers little-endian):
///
///       [u32 body length][u32 CRC-32C of the body][body]
///       body = [u64 sequence][i64 appendedAt ms][u8 kind][u8 flags: bit 0 retain][u16 topic length][topic][payload]
///
///   A body is 20 … 16 MiB bytes long.
/// - **ack** holds the watermark (the lowest unacknowledged sequence) in two alternating
///   20-byte slots, `[u64 watermark][u64 generation][u32 CRC-32C]` at offsets 0 and 32;
///   the valid slot with the higher generation wins (see `AckFile`). A missing or empty
///   `ack` means everything present is unacknowledged.
///
/// ## Recovery at open
///
/// Every segment is read and checked: length in range, checksum, sequence = previous + 1
/// (within a segment, and the first record equals the name). At an invalid record,
/// recovery *resynchronises*: it looks for the next valid frame after it (length in range,
/// checksum, a topic that fits, a sequence that can follow) and moves the records from
/// there on to a segment of their own, named by that sequence, then cuts the bad bytes
/// with `ftruncate`; the split is crash-safe (`split`). So one corrupt record costs that
/// record (`corruptRecords` counts the records lost), and the sequences between are a *gap*.
/// With no valid frame after it, the rest of the segment is cut: in the last segment, an
/// incomplete record or an impossible length there is a *torn tail* (counted in
/// `tornTailBytes`); anything else is corruption. Later segments are always read: their
/// records are kept and delivered across the gap (noted; the watermark steps over it).
/// Records below the stored watermark are skipped; segments with nothing left to deliver
/// are deleted, except the newest. Bad data never makes `init` fail; failing system calls do.
///
/// A sequence is never reused: the next one is above every record found, every record cut
/// (torn or corrupt), the newest segment's name and the stored watermark.
public final class Journal {
    /// What `init` found and cut; meant for the start-up log.
    public let recovery: JournalRecovery
    /// `isFull` is `bytes >= maxBytes`; may change on a configuration reload.
    public var maxBytes: Int

    private let directory: String
    private let segmentBytes: Int
    private let fsync: JournalFsync
    private var directoryFD: Int32
    private let ackFile: AckFile

    // Collections are marked `@exclusivity(unchecked)`: the runtime's check of overlapping
    // accesses cost about 8 % of a message in the benchmark. It is safe because one thread
    // uses the journal and no method keeps an access to one of them open across a call
    // that touches the same collection.

    // Segments and writing.

    /// Live segments by sequence; the last one is the one being written (once any exists).
    @exclusivity(unchecked) private var segments: [JournalSegment]
    /// Sum of `segments[].size`.
    private var segmentsBytes: Int
    /// Write descriptor of `segments.last`, or -1 until the first flush needs it.
    private var writerFD: Int32 = -1
    /// The next append must start a segment (see `RecoveredState.needsNewSegment`).
    private var needsNewSegment: Bool
    /// Bytes of the newest segment, counting buffered frames bound for it: decides roll-over at append.
    private var tailBytes: Int
    /// Encoded frames not yet written, in sequence order.
    private let writeBuffer = ByteBuffer(capacity: 64 << 10)
    /// Where in `writeBuffer` a new segment starts, and its first sequence.
    @exclusivity(unchecked) private var rollPoints: [(offset: Int, first: UInt64)] = []
    private var nextSequence: UInt64
    /// Flushed data not yet `fdatasync`ed (only tracked when the policy syncs).
    private var unsynced = false
    private var lastDataSync: Int64

    // Reading.

    private let reader = SegmentReader()
    /// Index in `segments` of the segment the reader is in (its file is opened lazily).
    private var readerIndex = 0
    /// The sequence after the last record handed out (or skipped) since the last rewind.
    private var nextHand: UInt64
    /// At least the sequence after the last flushed record: every record the reader can
    /// hand out is below it. When `nextHand` reached it, `nextBorrowed` knows without
    /// looking that there is nothing to hand out (the proxy asks until it gets nil, once
    /// more per loop iteration than there are records).
    private var flushedEnd: UInt64
    /// The sequence after the highest record ever handed out: acknowledgements at or above are ignored.
    private var handedLimit: UInt64
    private var handedOut = 0
    /// (sequence, appendedAt) of records handed out and not below the watermark, in sequence
    /// order from `inflightHead`; its first entry is the watermark record when that was handed out.
    @exclusivity(unchecked) private var inflightSequences: [UInt64] = []
    @exclusivity(unchecked) private var inflightTimes: [Int64] = []
    private var inflightHead = 0

    // Acknowledgements.

    /// The lowest sequence that exists and is not acknowledged; `nextSequence` when there is none.
    public private(set) var watermark: UInt64
    /// Acknowledged sequences above the watermark (out-of-order acknowledgements; usually empty).
    @exclusivity(unchecked) private var acknowledgedAbove: Set<UInt64> = []
    /// Sequences at or above the watermark that do not exist (cut at recovery); sorted, usually empty.
    @exclusivity(unchecked) private var gaps: [Range<UInt64>]
    private var unacknowledged: Int
    private var ackDirty = false
    private var ackUnsynced = false
    private var lastAckSync: Int64
    /// A failure of housekeeping inside `acknowledge` (which cannot throw), reported by
    /// the next `persistAcknowledgements()`.
    private var deferredError: JournalError?

    /// Opens (creating if needed) the journal in `directory` and recovers what it holds.
    ///
    /// - Parameters:
    ///   - maxBytes: the size at which `isFull` turns true (back-pressure; appends still succeed).
    ///   - segmentBytes: the size at which a new segment file is started (at most `maxBytes / 4`, at least 4 KiB).
    ///   - fsync: what to make durable against power loss.
    /// - Throws: `JournalError` when a system call fails (permissions, disk); never for bad data.
    public init(directory: String, maxBytes: Int, segmentBytes: Int = 16 << 20, fsync: JournalFsync) throws(JournalError) {
        precondition(segmentBytes > 0, "segmentBytes must be positive")
        try Posix.makeDirectories(directory)
        let ackFile = try AckFile(path: directory + "/ack")
        var state = try Journal.recover(directory: directory, acknowledged: ackFile.storedWatermark)
        state.recovery.notes.insert(contentsOf: ackFile.notes, at: 0)
        // Opened last: nothing after it can throw, so it never leaks.
        directoryFD = try Posix.open(directory, O_RDONLY | O_DIRECTORY, operation: "open directory")

        self.directory = directory
        self.maxBytes = maxBytes
        self.segmentBytes = segmentBytes
        self.fsync = fsync
        self.ackFile = ackFile
        recovery = state.recovery
        segments = state.segments
        segmentsBytes = state.segments.reduce(0) { $0 + $1.size }
        needsNewSegment = state.needsNewSegment
        tailBytes = state.needsNewSegment ? 0 : (state.segments.last?.size ?? 0)
        nextSequence = state.nextSequence
        watermark = state.watermark
        gaps = state.gaps
        unacknowledged = state.unacknowledged
        nextHand = state.watermark
        flushedEnd = state.nextSequence
        handedLimit = state.watermark
        let now = Posix.monotonicNanoseconds()
        lastDataSync = now
        lastAckSync = now
        readerIndex = segmentIndex(containing: watermark)
    }

    deinit { close() }

    // MARK: Appending

    /// Appends one record to the write buffer and returns its sequence.
    ///
    /// Never fails and never drops: the record is in memory until `flush()` writes it.
    /// The topic must be at most 65,535 bytes (MQTT's own limit) and the record at most 16 MiB.
    @discardableResult
    public func append(topic: UnsafeRawBufferPointer, payload: UnsafeRawBufferPointer, retain: Bool, kind: UInt8,
                       now milliseconds: Int64) -> UInt64 {
        precondition(topic.count <= Int(UInt16.max), "topic longer than 65,535 bytes")
        let bodyLength = RecordFormat.bodyHeader + topic.count + payload.count
        precondition(bodyLength <= RecordFormat.maxBody, "record larger than 16 MiB")
        let sequence = nextSequence
        nextSequence += 1
        if needsNewSegment || tailBytes >= rollBytes {
            rollPoints.append((writeBuffer.count, sequence))
            needsNewSegment = false
            tailBytes = 0
        }
        let frameLength = RecordFormat.frameHeader + bodyLength
        writeBuffer.reserve(frameLength)
        RecordFormat.encode(at: writeBuffer.base + writeBuffer.count, sequence: sequence, appendedAt: milliseconds,
                            kind: kind, retain: retain, topic: topic, payload: payload)
        writeBuffer.count += frameLength
        tailBytes += frameLength
        unacknowledged += 1
        return sequence
    }

    /// The size at which a segment is closed: `segmentBytes`, but at most a quarter of `maxBytes`
    /// (and at least 4 KiB). The segment being written is never deleted, so a segment as large
    /// as `maxBytes` could hold the journal full with almost everything acknowledged.
    private var rollBytes: Int { min(segmentBytes, max(maxBytes / 4, 4096)) }

    /// Appends one record given as byte arrays; see `append(topic:payload:retain:kind:now:)`.
    @discardableResult
    public func append(topic: [UInt8], payload: [UInt8], retain: Bool, kind: UInt8, now milliseconds: Int64) -> UInt64 {
        topic.withUnsafeBytes { t in
            payload.withUnsafeBytes { p in append(topic: t, payload: p, retain: retain, kind: kind, now: milliseconds) }
        }
    }

    /// True when appended records wait in memory for `flush()`.
    public var hasUnflushed: Bool { writeBuffer.count > 0 }

    /// The bytes of the records that wait in memory for `flush()`.
    public var unflushedBytes: Int { writeBuffer.count }

    /// Writes the buffered records to their segment files, then `fdatasync`s per the policy.
    ///
    /// One `pwrite` per segment touched. Once this returns, the records survive the death
    /// of the process (they are in the page cache) and `next()` can hand them out.
    /// On failure, what was written stays written and the rest stays buffered for the next call.
    public func flush() throws(JournalError) {
        if writeBuffer.count > 0 { try writeBuffered() }
        if unsynced { try syncDataIfDue() }
    }

    private func writeBuffered() throws(JournalError) {
        // Before the writes: a failure part of the way leaves it above what
        // was written, which only costs a look at the reader's end.
        flushedEnd = nextSequence
        var offset = 0
        var nextRoll = 0
        do throws(JournalError) {
            while offset < writeBuffer.count {
                if nextRoll < rollPoints.count && rollPoints[nextRoll].offset == offset {
                    try startSegment(first: rollPoints[nextRoll].first)
                    nextRoll += 1
                } else if writerFD < 0 {
                    writerFD = try Posix.open(segments[segments.count - 1].path, O_WRONLY, operation: "open segment")
                }
                let end = nextRoll < rollPoints.count ? rollPoints[nextRoll].offset : writeBuffer.count
                let index = segments.count - 1
                do {
                    try Posix.pwriteAll(writerFD, writeBuffer.base + offset, end - offset, at: segments[index].size,
                                        path: segments[index].path, operation: "write segment")
                } catch {
                    // Cut a partial write back, so that the file keeps ending on a record boundary.
                    // If even that fails, the next write overwrites the bytes at the same offset.
                    try? Posix.truncate(writerFD, to: segments[index].size, path: segments[index].path)
                    throw error
                }
                segments[index].size += end - offset
                segmentsBytes += end - offset
                unsynced = fsync != .never
                offset = end
            }
            writeBuffer.count = 0
            rollPoints.removeAll(keepingCapacity: true)
        } catch {
            writeBuffer.removeFirst(offset)
            rollPoints = rollPoints[nextRoll...].map { ($0.offset - offset, $0.first) }
            throw error
        }
    }

    /// Creates the segment file for `first` and makes it the one being written.
    ///
    /// Idempotent: if an earlier call created the file and then failed to sync the
    /// directory, calling again only retries the sync.
    private func startSegment(first: UInt64) throws(JournalError) {
        if segments.last?.first == first && writerFD >= 0 {
            if fsync != .never { try Posix.sync(directoryFD, path: directory) }
            return
        }
        if writerFD >= 0 {
            // The old segment will not be synced by later flushes: do it now if the policy syncs at all.
            if unsynced { try Posix.dataSync(writerFD, path: segments[segments.count - 1].path) }
            unsynced = false
            Posix.close(writerFD)
            writerFD = -1
        }
        let path = directory + "/" + JournalSegment.fileName(first: first)
        // O_EXCL: an existing file of that name would be a bug, and must not be overwritten.
        let fd = try Posix.open(path, O_WRONLY | O_CREAT | O_EXCL, operation: "create segment")
        segments.append(JournalSegment(first: first, size: 0, path: path))
        writerFD = fd
        // The new name must survive a power loss too, or its synced data would be unreachable.
        if fsync != .never { try Posix.sync(directoryFD, path: directory) }
    }

    private func syncDataIfDue() throws(JournalError) {
        switch fsync {
        case .never:
            unsynced = false
        case .always:
            try Posix.dataSync(writerFD, path: segments[segments.count - 1].path)
            unsynced = false
        case .interval(let milliseconds):
            let now = Posix.monotonicNanoseconds()
            if now - lastDataSync >= Int64(milliseconds) * 1_000_000 {
                try Posix.dataSync(writerFD, path: segments[segments.count - 1].path)
                lastDataSync = now
                unsynced = false
            }
        }
    }

    // MARK: Reading

    /// The next record not yet handed out, in sequence order; nil when every flushed record was handed out.
    ///
    /// Reads flushed data from the segment files through a 256 KiB buffer, so memory does
    /// not grow with the backlog. Records acknowledged meanwhile (after a `rewind`) are skipped.
    /// Checksums are verified at open only: what this process wrote itself is read back
    /// from the page cache as written.
    public func next() throws(JournalError) -> JournalRecord? {
        try nextBorrowed()?.copied
    }

    /// `next()` without copying: the record's bytes are borrowed from the read buffer
    /// (see `BorrowedJournalRecord` for how long). The proxy's path to the central broker.
    public func nextBorrowed() throws(JournalError) -> BorrowedJournalRecord? {
        guard nextHand < flushedEnd, let body = try nextBody() else { return nil }
        guard let record = RecordFormat.borrow(body: body) else {
            throw JournalError(errno: EBADMSG, operation: "read record (topic length out of range) before offset \(reader.position)",
                               path: reader.path)
        }
        reader.advance()
        nextHand = record.sequence + 1
        handedLimit = max(handedLimit, nextHand)
        handedOut += 1
        inflightSequences.append(record.sequence)
        inflightTimes.append(record.appendedAtMilliseconds)
        return record
    }

    /// Peeks the body of the next record to hand out, skipping acknowledged ones.
    private func nextBody() throws(JournalError) -> UnsafeRawBufferPointer? {
        while readerIndex < segments.count {
            if reader.fd < 0 { try reader.open(segments[readerIndex].path) }
            switch try reader.peek(limit: segments[readerIndex].size) {
            case .record(let body, _):
                let sequence = RecordFormat.sequence(ofBody: body.baseAddress!)
                if sequence < watermark || (!acknowledgedAbove.isEmpty && acknowledgedAbove.contains(sequence)) {
                    reader.advance()
                    nextHand = max(nextHand, sequence + 1)
                    continue
                }
                return body
            case .end:
                guard readerIndex + 1 < segments.count else { return nil }
                readerIndex += 1
                reader.close()
            case .badLength, .incomplete:
                // The file changed under the journal (someone else truncated or wrote it).
                throw JournalError(errno: EBADMSG, operation: "read record at offset \(reader.position)", path: reader.path)
            }
        }
        return nil
    }

    /// The record `sequence`, if it is flushed and not acknowledged; nil otherwise.
    ///
    /// Reads its segment from the start with a reader of its own: for the rare
    /// record that needs a second look (one the broker refused), not for the
    /// stream, which `next()` reads.
    public func record(_ sequence: UInt64) throws(JournalError) -> JournalRecord? {
        guard sequence >= watermark, sequence < nextSequence, !acknowledgedAbove.contains(sequence) else { return nil }
        let index = segmentIndex(containing: sequence)
        guard index < segments.count else { return nil }
        let reader = SegmentReader(chunk: 64 << 10)
        defer { reader.close() }
        try reader.open(segments[index].path)
        while case .record(let body, _) = try reader.peek(limit: segments[index].size) {
            if RecordFormat.sequence(ofBody: body.baseAddress!) == sequence { return RecordFormat.borrow(body: body)?.copied }
            reader.advance()
        }
        return nil
    }

    /// Hands out again, from the watermark, every record not yet acknowledged (e.g. after the connection state was lost).
    public func rewind() {
        nextHand = watermark
        handedOut = 0
        inflightSequences.removeAll(keepingCapacity: true)
        inflightTimes.removeAll(keepingCapacity: true)
        inflightHead = 0
        reader.close()
        readerIndex = segmentIndex(containing: watermark)
    }

    /// The index of the segment that holds `sequence` (or would), 0 if none.
    private func segmentIndex(containing sequence: UInt64) -> Int {
        var index = 0
        while index + 1 < segments.count && segments[index + 1].first <= sequence { index += 1 }
        return index
    }

    // MARK: Acknowledging

    /// Marks a record acknowledged by the central broker; any order is accepted.
    ///
    /// Sequences never handed out, already acknowledged or below the watermark are ignored.
    /// When the watermark passes the end of a segment, that segment is deleted (never the one
    /// being written). A failing delete is reported by the next `persistAcknowledgements()`.
    public func acknowledge(_ sequence: UInt64) {
        guard sequence >= watermark, sequence < handedLimit else { return }
        if !gaps.isEmpty && gaps.contains(where: { $0.contains(sequence) }) { return }
        if sequence == watermark {
            advanceWatermark()
        } else if !acknowledgedAbove.insert(sequence).inserted {
            return
        }
        unacknowledged -= 1
        if sequence < nextHand { handedOut -= 1 }
        ackDirty = true
    }

    /// Moves the watermark past the record just acknowledged, the gaps and the out-of-order acknowledgements it meets.
    private func advanceWatermark() {
        watermark += 1
        while true {
            if !gaps.isEmpty && watermark >= gaps[0].lowerBound {
                watermark = max(watermark, gaps[0].upperBound)
                gaps.removeFirst()
            } else if !acknowledgedAbove.isEmpty && acknowledgedAbove.remove(watermark) != nil {
                watermark += 1
            } else {
                break
            }
        }
        while inflightHead < inflightSequences.count && inflightSequences[inflightHead] < watermark { inflightHead += 1 }
        // Compact rarely: emptying the arrays after every acknowledgement would cost more than the rest of it.
        if inflightHead >= 1024 && inflightHead == inflightSequences.count {
            inflightSequences.removeAll(keepingCapacity: true)
            inflightTimes.removeAll(keepingCapacity: true)
            inflightHead = 0
        } else if inflightHead >= 4096 && inflightHead * 2 >= inflightSequences.count {
            inflightSequences.removeFirst(inflightHead)
            inflightTimes.removeFirst(inflightHead)
            inflightHead = 0
        }
        if segments.count > 1 && watermark >= segments[1].first { deleteAcknowledgedSegments() }
        if watermark == nextSequence && segmentsBytes >= maxBytes && segments.last.map({ $0.size > 0 }) == true {
            startEmptySegment()
        }
    }

    /// Deletes the leading segments all of whose records are below the watermark, except the last one.
    private func deleteAcknowledgedSegments() {
        var removed = 0
        while segments.count - removed > 1 && watermark >= segments[removed + 1].first {
            do {
                try Posix.unlink(segments[removed].path)
            } catch {
                deferredError = error
                break
            }
            segmentsBytes -= segments[removed].size
            removed += 1
        }
        guard removed > 0 else { return }
        segments.removeFirst(removed)
        if readerIndex < removed {
            // Only possible when acknowledgements overtook the reader (after a rewind):
            // it restarts in the segment holding the watermark and skips what is acknowledged.
            reader.close()
            readerIndex = segmentIndex(containing: watermark)
        } else {
            readerIndex -= removed
        }
    }

    /// Everything is acknowledged but the segment being written alone keeps the journal full
    /// (`maxBytes` below `segmentBytes`): start an empty segment for the next sequence and drop the old one.
    ///
    /// The empty file's name keeps the next sequence reserved across a restart even if the
    /// watermark was not persisted yet.
    private func startEmptySegment() {
        do {
            try startSegment(first: nextSequence)
        } catch {
            deferredError = error
            return
        }
        needsNewSegment = false
        tailBytes = 0
        deleteAcknowledgedSegments()
    }

    /// Stores the watermark in the `ack` file if it changed: one `pwrite`, plus `fdatasync` per the policy.
    ///
    /// Called once per event-loop iteration. Without it, a restart only repeats records (the
    /// acknowledgements are lost, not the records). Also throws a failure that `acknowledge`
    /// deferred (deleting a segment).
    public func persistAcknowledgements() throws(JournalError) {
        if ackDirty {
            try ackFile.store(watermark)
            ackDirty = false
            ackUnsynced = fsync != .never
        }
        if ackUnsynced {
            switch fsync {
            case .never:
                ackUnsynced = false
            case .always:
                try ackFile.sync()
                ackUnsynced = false
            case .interval(let milliseconds):
                let now = Posix.monotonicNanoseconds()
                if now - lastAckSync >= Int64(milliseconds) * 1_000_000 {
                    try ackFile.sync()
                    lastAckSync = now
                    ackUnsynced = false
                }
            }
        }
        if let error = deferredError {
            deferredError = nil
            throw error
        }
    }

    // MARK: State

    /// Bytes of all live segment files plus the unflushed buffer.
    public var bytes: Int { segmentsBytes + writeBuffer.count }

    /// Records appended (now or before a restart) and not yet acknowledged.
    public var unacknowledgedCount: Int { unacknowledged }

    /// Records handed out by `next()` since the last rewind and not yet acknowledged.
    public var handedOutCount: Int { handedOut }

    /// `bytes >= maxBytes`: the caller should stop reading input until acknowledgements free space.
    public var isFull: Bool { bytes >= maxBytes }

    /// The append time of the watermark record, nil when everything is acknowledged.
    ///
    /// Cheap: the watermark record is usually the oldest one in flight, kept in memory;
    /// otherwise it is the next one the reader will hand out (already in its buffer,
    /// or read now and kept there for `next()`), or the first one in the write buffer.
    public var oldestUnacknowledgedMilliseconds: Int64? {
        guard unacknowledged > 0 else { return nil }
        if inflightHead < inflightSequences.count { return inflightTimes[inflightHead] }
        // A read error here shows up again at the next `next()`, which can throw it.
        if let body = try? nextBody() { return RecordFormat.appendedAt(ofBody: body.baseAddress!) }
        if writeBuffer.count > 0 {
            return RecordFormat.appendedAt(ofBody: writeBuffer.base + RecordFormat.frameHeader)
        }
        return nil
    }

    /// The read buffer's allocation in bytes: stays at its chunk size unless a record is larger.
    var readBufferCapacity: Int { reader.bufferCapacity }

    /// Closes every file. Flushing first is the caller's job; the journal must not be used afterwards.
    public func close() {
        Posix.close(writerFD)
        writerFD = -1
        reader.close()
        ackFile.close()
        Posix.close(directoryFD)
        directoryFD = -1
    }
}
