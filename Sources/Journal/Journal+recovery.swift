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

    /// Validates every segment in `directory`, cuts invalid data, deletes acknowledged segments
    /// and derives the watermark and the next sequence.
    ///
    /// Rules (see the format description on `Journal`):
    /// - A segment's records must have sequences `first, first + 1, …` (its name, then +1 each),
    ///   a length in range and a matching CRC-32C. At the first record that does not, the rest
    ///   of that segment is cut (`ftruncate`); later segments are still read.
    /// - In the last segment, an incomplete frame or an out-of-range length at that point is a
    ///   torn tail (a write interrupted by a power loss or a crash during `write(2)`); anything
    ///   else is corruption.
    /// - A segment whose name is not above the previous segment's last record cannot be ordered
    ///   and is cut entirely. A segment starting above the previous one's last record + 1 leaves a
    ///   gap: the missing sequences are gone, the records after the gap are kept and delivered.
    /// - Bad data never throws; only failing system calls do.
    static func recover(directory: String, acknowledged stored: UInt64?) throws(JournalError) -> RecoveredState {
        var state = RecoveredState()
        let files = try Posix.listDirectory(directory)
            .compactMap { name in JournalSegment.first(inFileName: name).map { (first: $0, name: name) } }
            .sorted { $0.first < $1.first }
        let scanner = SegmentReader()
        var scanned: [Scanned] = []

        for (index, file) in files.enumerated() {
            let isLast = index == files.count - 1
            let path = directory + "/" + file.name
            try scanner.open(path, writable: true)
            let fileSize = try Posix.size(scanner.fd, path: path)
            var item = Scanned(segment: JournalSegment(first: file.first, size: fileSize, path: path))
            var problem: String?
            var torn = false
            var valid = fileSize

            if let previous = scanned.last(where: { $0.lastPresent != nil })?.lastPresent, file.first <= previous {
                problem = "starts at sequence \(file.first), not after the previous segment's last record \(previous)"
                valid = 0
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
                    } else if RecordFormat.decode(body: body) == nil {
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
                let cut = fileSize - valid
                try Posix.truncate(scanner.fd, to: valid, path: path)
                item.segment.size = valid
                state.recovery.droppedBytes += cut
                if torn {
                    state.recovery.tornTailBytes += cut
                    state.recovery.notes.append("\(path): torn tail, \(problem); cut \(cut) bytes")
                } else {
                    state.recovery.corruptRecords += 1
                    state.recovery.notes.append("\(path): corrupt, \(problem); cut the remaining \(cut) bytes of the segment")
                }
            }
            scanner.close()
            scanned.append(item)
        }

        // The next sequence must not repeat any sequence seen: records present, the newest
        // segment's name (an empty newest segment reserves it) and the acknowledged position
        // (which can lie above every record if a power loss took unsynced segment data).
        var next: UInt64 = 1
        if let last = scanned.last(where: { $0.lastPresent != nil })?.lastPresent { next = last + 1 }
        if let newest = scanned.last { next = max(next, newest.segment.first) }
        if let stored { next = max(next, stored) }
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
