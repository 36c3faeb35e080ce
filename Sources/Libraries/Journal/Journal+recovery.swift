import Glibc

/// What recovery hands to `Journal.init`: the validated segments and the positions derived from them.
struct RecoveredState {
    var segments: [JournalSegment] = []
    /// The lowest sequence that exists and is not acknowledged (== `nextSequence` when none).
    var watermark: UInt64 = 1
    /// The sequence the next append gets.
    var nextSequence: UInt64 = 1
    /// Ranges at or above the watermark that no record has (cut by recovery); sorted.
    var gaps: [Range<UInt64>] = []
    /// Records at or above the watermark.
    var unacknowledged = 0
    /// True when the next append must start a new segment: there is none, or the newest
    /// one's next sequence is not `nextSequence` (a record must follow its predecessor in a file).
    var needsNewSegment = true
    var recovery = JournalRecovery()
}

extension Journal {
    /// A segment after validation: the file cut to its valid prefix.
    private struct Scanned {
        var segment: JournalSegment
        /// Sequences of the first and last valid record, nil when none is left.
        var firstPresent: UInt64?
        var lastPresent: UInt64?
    }

    /// Validates every segment in `directory`, resynchronises past invalid data, deletes
    /// acknowledged segments and derives the watermark and the next sequence.
    ///
    /// Rules (see the format description on `Journal`):
    /// - A segment's records must have sequences `first, first + 1, …` (its name, then +1 each),
    ///   a length in range and a matching CRC-32C.
    /// - At the first record that does not, recovery looks for the next valid frame after it
    ///   (`resync`): a length in range, a matching CRC-32C, a topic that fits and a sequence
    ///   that can follow the bad record. The records from there on are moved to a segment of
    ///   their own (named by that frame's sequence, see `split`) and the bad bytes are cut:
    ///   one corrupt record costs that record, and the sequences between are a gap.
    /// - Without a valid frame after it, the rest of that segment is cut (`ftruncate`). In the
    ///   last segment, an incomplete frame or an out-of-range length there is a torn tail (a
    ///   write interrupted by a power loss or a crash during `write(2)`); anything else is
    ///   corruption. Later segments are still read.
    /// - A segment whose name is not above the previous segment's last record cannot be ordered
    ///   and is cut entirely. A segment starting above the previous one's last record + 1 leaves a
    ///   gap: the missing sequences are gone, the records after the gap are kept and delivered.
    /// - The sequence of a cut record is never assigned again (`nextSequence` is above it).
    /// - Bad data never throws; only failing system calls do.
    static func recover(directory: String, acknowledged stored: UInt64?) throws(JournalError) -> RecoveredState {
        var state = RecoveredState()
        let names = try Posix.listDirectory(directory)
        // A split interrupted before its link: the original segment is intact, the copy is redone.
        for name in names where name.hasSuffix(splitSuffix) { try Posix.unlink(directory + "/" + name) }
        var files = names
            .compactMap { name in JournalSegment.first(inFileName: name).map { (first: $0, name: name) } }
            .sorted { $0.first < $1.first }
        let scanner = SegmentReader()
        var scanned: [Scanned] = []
        /// The next sequence is at least this: above every record cut.
        var reserved: UInt64 = 1

        var index = 0
        while index < files.count {
            let file = files[index]
            let isLast = index == files.count - 1
            let path = directory + "/" + file.name
            try scanner.open(path, writable: true)
            let fileSize = try Posix.size(scanner.fd, path: path)
            var item = Scanned(segment: JournalSegment(first: file.first, size: fileSize, path: path))
            var problem: String?
            var torn = false
            var valid = fileSize

            var ordered = true
            if let previous = scanned.last(where: { $0.lastPresent != nil })?.lastPresent, file.first <= previous {
                problem = "starts at sequence \(file.first), not after the previous segment's last record \(previous)"
                valid = 0
                ordered = false
            }
            var expected = file.first
            scan: while problem == nil {
                let offset = scanner.position
                switch try scanner.peek(limit: fileSize) {
                case .end:
                    break scan
                case .record(let body, let checksum):
                    let sequence = RecordFormat.sequence(ofBody: body.baseAddress!)
                    if CRC32C.checksum(body) != checksum {
                        problem = "checksum mismatch in the record at offset \(offset)"
                    } else if sequence != expected {
                        problem = "sequence \(sequence) at offset \(offset), expected \(expected)"
                    } else if RecordFormat.borrow(body: body) == nil {
                        problem = "topic length out of range in the record at offset \(offset)"
                    }
                    if problem != nil { valid = offset; break scan }
                    scanner.advance()
                    item.firstPresent = item.firstPresent ?? sequence
                    item.lastPresent = sequence
                    expected += 1
                case .badLength(let length):
                    problem = "length \(length) out of range at offset \(offset)"
                    torn = isLast
                    valid = offset
                case .incomplete:
                    problem = "incomplete record at offset \(offset)"
                    torn = isLast
                    valid = offset
                }
            }
            if let problem, valid < fileSize {
                reserved = max(reserved, expected + 1)
                let found = ordered ? try resync(scanner.fd, path: path, from: valid, size: fileSize, expected: expected) : nil
                if let found {
                    let name = JournalSegment.fileName(first: found.sequence)
                    if try split(scanner.fd, path: path, from: found.offset, size: fileSize, directory: directory, name: name),
                       !files[(index + 1)...].contains(where: { $0.name == name }) {
                        files.insert((found.sequence, name), at: index + 1)
                    }
                    let lost = Int(found.sequence - expected)
                    let skipped = found.offset - valid
                    state.recovery.droppedBytes += skipped
                    state.recovery.corruptRecords += lost
                    state.recovery.notes.append("\(path): corrupt, \(problem); skipped \(skipped) bytes (\(lost) record(s)) "
                        + "to the valid record \(found.sequence) at offset \(found.offset), which goes on in \(name)")
                } else {
                    let cut = fileSize - valid
                    state.recovery.droppedBytes += cut
                    if torn {
                        state.recovery.tornTailBytes += cut
                        state.recovery.notes.append("\(path): torn tail, \(problem); cut \(cut) bytes")
                    } else {
                        // The records lost run up to the next segment's first one (at least the bad one).
                        let minFrame = RecordFormat.frameHeader + RecordFormat.bodyHeader
                        let toNext = isLast || files[index + 1].first <= expected ? 1 : files[index + 1].first - expected
                        state.recovery.corruptRecords += ordered ? Int(min(toNext, UInt64(max(1, cut / minFrame)))) : 0
                        state.recovery.notes.append("\(path): corrupt, \(problem); cut the remaining \(cut) bytes of the segment")
                    }
                }
                try Posix.truncate(scanner.fd, to: valid, path: path)
                item.segment.size = valid
            }
            scanner.close()
            scanned.append(item)
            index += 1
        }

        // The next sequence must not repeat any sequence seen: records present, records cut,
        // the newest segment's name (an empty newest segment reserves it) and the acknowledged
        // position (which can lie above every record if a power loss took unsynced segment data).
        var next: UInt64 = 1
        if let last = scanned.last(where: { $0.lastPresent != nil })?.lastPresent { next = last + 1 }
        if let newest = scanned.last { next = max(next, newest.segment.first) }
        if let stored { next = max(next, stored) }
        next = max(next, reserved)
        state.nextSequence = next

        // The watermark is the lowest present record at or above the stored one; without an
        // ack file everything present counts as unacknowledged.
        let floor = stored ?? 0
        var watermark = next
        for item in scanned {
            if let first = item.firstPresent, let last = item.lastPresent, last >= floor {
                watermark = max(first, floor)
                break
            }
        }
        state.watermark = watermark

        // Delete segments with nothing to deliver, except the newest, which keeps taking appends
        // when its next sequence fits.
        var kept: [Scanned] = []
        for (index, item) in scanned.enumerated() {
            let isLast = index == scanned.count - 1
            let fitsNext = item.lastPresent.map { $0 + 1 == next } ?? (item.segment.first == next)
            let useless = item.lastPresent.map { $0 < watermark } ?? true
            if useless && !(isLast && fitsNext) {
                try Posix.unlink(item.segment.path)
                if item.lastPresent == nil && !isLast {
                    state.recovery.notes.append("\(item.segment.path): no valid record left; deleted")
                }
                continue
            }
            kept.append(item)
        }
        state.segments = kept.map(\.segment)
        if let newest = kept.last {
            state.needsNewSegment = !(newest.lastPresent.map { $0 + 1 == next } ?? (newest.segment.first == next))
        }

        // Gaps between the present ranges at or above the watermark, and up to the next sequence.
        var covered = watermark
        for item in kept {
            guard let first = item.firstPresent, let last = item.lastPresent, last >= watermark else { continue }
            let from = max(first, watermark)
            if from > covered {
                state.gaps.append(covered ..< from)
                state.recovery.notes.append("sequences \(covered)…\(from - 1) are missing (cut above); the records after them are kept and will be sent")
            }
            state.unacknowledged += Int(last - from + 1)
            covered = last + 1
        }
        if covered < next && covered > watermark { state.gaps.append(covered ..< next) }

        state.recovery.segments = kept.count
        state.recovery.records = state.unacknowledged
        return state
    }
}

extension Journal {
    /// The suffix of a split's copy until it gets its segment name (`split`).
    static let splitSuffix = ".seg.split"

    /// The first valid frame after the invalid data at `from` in the segment open as `fd`,
    /// with its sequence; nil when none follows.
    ///
    /// Valid: a length in range, a matching CRC-32C, a topic length that fits, and a
    /// sequence that can follow the bad record — at least `expected`, and at most one more
    /// per smallest possible frame between `from` and it (random bytes almost never pass
    /// that before the checksum is even computed). The remainder of the segment is read
    /// whole: this only runs at start-up, on a damaged segment, and a segment is bounded.
    private static func resync(_ fd: Int32, path: String, from: Int, size: Int,
                               expected: UInt64) throws(JournalError) -> (offset: Int, sequence: UInt64)? {
        let rest = UnsafeMutableRawBufferPointer.allocate(byteCount: size - from, alignment: 8)
        defer { rest.deallocate() }
        let count = try Posix.pread(fd, rest.baseAddress!, rest.count, at: from, path: path)
        let minFrame = RecordFormat.frameHeader + RecordFormat.bodyHeader
        let raw = UnsafeRawBufferPointer(rest)
        do {
            var p = 1
            while p + minFrame <= count {
                let length = Int(UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: p, as: UInt32.self)))
                if length >= RecordFormat.bodyHeader && length <= RecordFormat.maxBody
                    && p + RecordFormat.frameHeader + length <= count {
                    let body = UnsafeRawBufferPointer(rebasing: raw[(p + RecordFormat.frameHeader) ..< (p + RecordFormat.frameHeader + length)])
                    let sequence = RecordFormat.sequence(ofBody: body.baseAddress!)
                    if sequence >= expected && sequence - expected <= UInt64(p / minFrame) + 1
                        && CRC32C.checksum(body) == UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: p + 4, as: UInt32.self))
                        && RecordFormat.borrow(body: body) != nil {
                        return (from + p, sequence)
                    }
                }
                p += 1
            }
            return nil
        }
    }

    /// Copies bytes `from ..< size` of the segment open as `fd` to a new segment `name`
    /// in `directory`, durably, before the caller cuts them from the original.
    ///
    /// Crash-safe in any order of events: the copy is written and synced under a temporary
    /// name (`splitSuffix`, deleted at the next recovery if the process dies first), then
    /// linked to its segment name (atomic, never replacing), then the directory is synced.
    /// Until the caller's `ftruncate`, the original still holds everything, and a recovery
    /// after a crash redoes the split. Returns false when `name` already exists: an earlier
    /// split linked it and died before the cut, so it holds these records already.
    private static func split(_ fd: Int32, path: String, from: Int, size: Int, directory: String,
                              name: String) throws(JournalError) -> Bool {
        let target = directory + "/" + name
        let temporary = String(target.dropLast(4)) + splitSuffix
        let out = try Posix.open(temporary, O_WRONLY | O_CREAT | O_TRUNC, operation: "create split segment")
        defer { Posix.close(out) }
        let buffer = ByteBuffer(capacity: 256 << 10)
        var offset = from
        while offset < size {
            let n = try Posix.pread(fd, buffer.base, min(buffer.capacity, size - offset), at: offset, path: path)
            if n == 0 { break }
            try Posix.pwriteAll(out, buffer.base, n, at: offset - from, path: temporary, operation: "write split segment")
            offset += n
        }
        try Posix.dataSync(out, path: temporary)
        let linked = try Posix.link(temporary, to: target)
        try Posix.unlink(temporary)
        let directoryFD = try Posix.open(directory, O_RDONLY | O_DIRECTORY, operation: "open directory")
        defer { Posix.close(directoryFD) }
        try Posix.sync(directoryFD, path: directory)
        return linked
    }
}
