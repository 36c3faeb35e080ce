import Glibc

/// The acknowledged position: the file `ack` with two alternating slots.
///
///     offset  0: slot A  [u64 watermark][u64 generation][u32 CRC-32C of the 16 bytes before]
///     offset 32: slot B  (same layout)
///
/// Each store increments the generation and overwrites the slot of the *older*
/// generation with one `pwrite` of 20 bytes, so the newest valid slot is never the
/// one being written. If a store is torn (power loss in the middle), that slot's
/// checksum fails and `open` falls back to the other, one generation older: the
/// records between the two watermarks are sent again (duplicates), none is lost.
/// Process death cannot tear the slot at all: `pwrite` into the page cache completes.
final class AckFile {
    static let slotSize = 20
    static let slotStride = 32

    let path: String
    private var fd: Int32
    /// Generation of the newest slot written or found; 0 when the file was empty.
    private(set) var generation: UInt64 = 0
    /// The watermark found at open, nil if no slot was valid.
    let storedWatermark: UInt64?
    /// Scratch space for one slot, reused by every store so that storing allocates nothing.
    private let slot = UnsafeMutableRawBufferPointer.allocate(byteCount: AckFile.slotSize, alignment: 8)
    /// Problems found at open, for `JournalRecovery.notes`.
    private(set) var notes: [String] = []

    /// Opens (creating if missing) the ack file and reads both slots.
    init(path: String) throws(JournalError) {
        self.path = path
        fd = try Posix.open(path, O_RDWR | O_CREAT, operation: "open ack file")
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 2 * Self.slotStride, alignment: 8)
        defer { buffer.deallocate() }
        let read: Int
        do throws(JournalError) {
            read = try Posix.pread(fd, buffer.baseAddress!, buffer.count, at: 0, path: path)
        } catch {
            Posix.close(fd)
            throw error
        }
        let bytes = Array(buffer)
        var best: (watermark: UInt64, generation: UInt64)?
        for (slot, name) in [(0, "A"), (1, "B")] {
            let offset = slot * Self.slotStride
            guard read >= offset + Self.slotSize else { continue }
            let slotBytes = bytes[offset ..< offset + Self.slotSize]
            guard let value = Self.decode(Array(slotBytes)) else {
                // A never-written slot reads as zeros; only anything else is worth a note.
                if slotBytes.contains(where: { $0 != 0 }) {
                    notes.append("ack file \(path): slot \(name) is invalid (torn write?); using the other slot")
                }
                continue
            }
            if best == nil || value.generation > best!.generation { best = value }
        }
        storedWatermark = best?.watermark
        generation = best?.generation ?? 0
    }

    deinit {
        close()
        slot.deallocate()
    }

    /// Stores `watermark` in the slot of the older generation: one `pwrite`.
    func store(_ watermark: UInt64) throws(JournalError) {
        let next = generation + 1
        let raw = slot
        raw.storeBytes(of: watermark.littleEndian, toByteOffset: 0, as: UInt64.self)
        raw.storeBytes(of: next.littleEndian, toByteOffset: 8, as: UInt64.self)
        let crc = CRC32C.checksum(UnsafeRawBufferPointer(rebasing: raw[0 ..< 16]))
        raw.storeBytes(of: crc.littleEndian, toByteOffset: 16, as: UInt32.self)
        try Posix.pwriteAll(fd, raw.baseAddress!, Self.slotSize, at: Int(next & 1) * Self.slotStride,
                            path: path, operation: "write ack file")
        generation = next
    }

    /// `fdatasync` of the ack file.
    func sync() throws(JournalError) {
        try Posix.dataSync(fd, path: path)
    }

    /// Closes the file; further stores fail with EBADF.
    func close() {
        Posix.close(fd)
        fd = -1
    }

    /// (watermark, generation) of a 20-byte slot, nil if its checksum does not match.
    static func decode(_ slot: [UInt8]) -> (watermark: UInt64, generation: UInt64)? {
        slot.withUnsafeBytes { raw in
            let crc = UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: 16, as: UInt32.self))
            guard CRC32C.checksum(UnsafeRawBufferPointer(rebasing: raw[0 ..< 16])) == crc else { return nil }
            return (UInt64(littleEndian: raw.loadUnaligned(fromByteOffset: 0, as: UInt64.self)),
                    UInt64(littleEndian: raw.loadUnaligned(fromByteOffset: 8, as: UInt64.self)))
        }
    }
}
