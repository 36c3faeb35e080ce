import Glibc

/// Reads the frames of one segment file in order through a bounded buffer.
///
/// The buffer starts at `chunk` bytes and only grows to hold one record larger than
/// that; it is shrunk back once such a record was consumed. Memory therefore does
/// not depend on the size of the backlog, only on the largest record. One thread.
final class SegmentReader {
    /// One step of reading.
    enum Frame {
        /// A complete frame; `body` points into the buffer and is valid until the next call.
        case record(body: UnsafeRawBufferPointer, checksum: UInt32)
        /// No bytes left before the limit.
        case end
        /// The length field is out of range: what follows is not a record.
        case badLength(UInt32)
        /// The limit cuts the frame short.
        case incomplete
    }

    /// Bytes read per `pread` (and the buffer's normal size).
    let chunk: Int
    private let buffer: ByteBuffer
    /// Unconsumed bytes are `buffer[start ..< buffer.count]`.
    private var start = 0
    /// File offset of `buffer[buffer.count]`.
    private var fileOffset = 0
    /// The open segment, or -1.
    private(set) var fd: Int32 = -1
    private(set) var path = ""
    /// Frame length of the record the last `peek` returned, 0 if none.
    private var peekedLength = 0

    /// A reader with no file open.
    init(chunk: Int = 256 << 10) {
        self.chunk = chunk
        buffer = ByteBuffer(capacity: chunk)
    }

    deinit { close() }

    /// File offset of the first byte not yet consumed: the end of the last frame returned.
    var position: Int { fileOffset - (buffer.count - start) }

    /// The buffer's current allocation, for tests of the memory bound.
    var bufferCapacity: Int { buffer.capacity }

    /// Opens `path` (read-only unless `writable`) and positions at its start.
    func open(_ path: String, writable: Bool = false) throws(JournalError) {
        close()
        fd = try Posix.open(path, writable ? O_RDWR : O_RDONLY, operation: "open segment")
        self.path = path
    }

    /// Closes the file and forgets the buffered bytes.
    func close() {
        Posix.close(fd)
        fd = -1
        start = 0
        buffer.count = 0
        fileOffset = 0
        peekedLength = 0
    }

    /// The next frame, reading no further than file offset `limit`, without consuming it.
    ///
    /// `limit` is what the journal knows to be valid: the flushed size of the segment
    /// being written, or the file size during recovery. Call `advance()` to step past
    /// a returned record; peeking again returns the same frame.
    func peek(limit: Int) throws(JournalError) -> Frame {
        while true {
            let available = buffer.count - start
            var needed = RecordFormat.frameHeader
            if available >= RecordFormat.frameHeader {
                let frame = buffer.base + start
                let length = UInt32(littleEndian: frame.loadUnaligned(as: UInt32.self))
                guard length >= RecordFormat.bodyHeader && length <= RecordFormat.maxBody else {
                    return .badLength(length)
                }
                needed = RecordFormat.frameHeader + Int(length)
                if available >= needed {
                    peekedLength = needed
                    let checksum = UInt32(littleEndian: frame.loadUnaligned(fromByteOffset: 4, as: UInt32.self))
                    return .record(body: UnsafeRawBufferPointer(start: frame + RecordFormat.frameHeader, count: Int(length)),
                                   checksum: checksum)
                }
            }
            if fileOffset >= limit { return available == 0 ? .end : .incomplete }
            try refill(needed: needed, limit: limit)
        }
    }

    /// Steps past the record the last `peek` returned. Its body pointer stays valid until the next `peek`.
    func advance() {
        precondition(peekedLength > 0, "advance() without a peeked record")
        start += peekedLength
        peekedLength = 0
    }

    /// Moves the unconsumed bytes to the front and reads more, so that at least `needed` bytes could fit.
    private func refill(needed: Int, limit: Int) throws(JournalError) {
        buffer.removeFirst(start)
        start = 0
        peekedLength = 0
        if needed <= chunk { buffer.shrink(to: chunk) }
        buffer.reserve(max(needed, chunk) - buffer.count)
        let room = min(buffer.capacity - buffer.count, limit - fileOffset)
        let n = try Posix.pread(fd, buffer.base + buffer.count, room, at: fileOffset, path: path)
        // The file is shorter than the journal believed: report what is there as incomplete.
        if n == 0 { fileOffset = limit; return }
        buffer.count += n
        fileOffset += n
    }
}
