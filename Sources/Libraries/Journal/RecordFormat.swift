/// The byte layout of one record in a segment file (see `Journal` for the whole format).
///
///     frame: [u32 body length][u32 CRC-32C of the body][body]
///     body:  [u64 sequence][i64 appendedAt ms][u8 kind][u8 flags][u16 topic length][topic][payload]
///
/// All integers little-endian; flags bit 0 is retain, the other bits are zero.
enum RecordFormat {
    /// Bytes before the body: length and checksum.
    static let frameHeader = 8
    /// Bytes of the body before the topic.
    static let bodyHeader = 20
    /// The largest body accepted. A length field above it is garbage, not a record;
    /// it also bounds the read buffer, which must hold one whole record.
    static let maxBody = 16 << 20

    /// Offsets inside the body.
    static let sequenceOffset = 0
    static let appendedAtOffset = 8
    static let kindOffset = 16
    static let flagsOffset = 17
    static let topicLengthOffset = 18

    static let retainFlag: UInt8 = 1

    /// The sequence number of a body (which must have at least `bodyHeader` bytes).
    static func sequence(ofBody body: UnsafeRawPointer) -> UInt64 {
        UInt64(littleEndian: body.loadUnaligned(fromByteOffset: sequenceOffset, as: UInt64.self))
    }

    /// The append time of a body.
    static func appendedAt(ofBody body: UnsafeRawPointer) -> Int64 {
        Int64(littleEndian: body.loadUnaligned(fromByteOffset: appendedAtOffset, as: Int64.self))
    }

    /// Writes a whole frame at `frame`, which must have room for `frameHeader + bodyHeader + topic + payload` bytes.
    static func encode(at frame: UnsafeMutableRawPointer, sequence: UInt64, appendedAt: Int64, kind: UInt8,
                       retain: Bool, topic: UnsafeRawBufferPointer, payload: UnsafeRawBufferPointer) {
        let bodyLength = bodyHeader + topic.count + payload.count
        let body = frame + frameHeader
        frame.storeBytes(of: UInt32(bodyLength).littleEndian, as: UInt32.self)
        body.storeBytes(of: sequence.littleEndian, toByteOffset: sequenceOffset, as: UInt64.self)
        body.storeBytes(of: appendedAt.littleEndian, toByteOffset: appendedAtOffset, as: Int64.self)
        body.storeBytes(of: kind, toByteOffset: kindOffset, as: UInt8.self)
        body.storeBytes(of: retain ? retainFlag : 0, toByteOffset: flagsOffset, as: UInt8.self)
        body.storeBytes(of: UInt16(topic.count).littleEndian, toByteOffset: topicLengthOffset, as: UInt16.self)
        if let t = topic.baseAddress { (body + bodyHeader).copyMemory(from: t, byteCount: topic.count) }
        if let p = payload.baseAddress { (body + bodyHeader + topic.count).copyMemory(from: p, byteCount: payload.count) }
        let crc = CRC32C.checksum(UnsafeRawBufferPointer(start: body, count: bodyLength))
        frame.storeBytes(of: crc.littleEndian, toByteOffset: 4, as: UInt32.self)
    }

    /// The record in a body already known to be well-formed (length checked), its topic
    /// and payload pointing into `body`; nil if its topic length does not fit.
    static func borrow(body: UnsafeRawBufferPointer) -> BorrowedJournalRecord? {
        let base = body.baseAddress!
        let topicLength = Int(UInt16(littleEndian: base.loadUnaligned(fromByteOffset: topicLengthOffset, as: UInt16.self)))
        guard bodyHeader + topicLength <= body.count else { return nil }
        let flags = base.load(fromByteOffset: flagsOffset, as: UInt8.self)
        return BorrowedJournalRecord(
            sequence: sequence(ofBody: base),
            appendedAtMilliseconds: appendedAt(ofBody: base),
            kind: base.load(fromByteOffset: kindOffset, as: UInt8.self),
            retain: flags & retainFlag != 0,
            topic: UnsafeRawBufferPointer(start: base + bodyHeader, count: topicLength),
            payload: UnsafeRawBufferPointer(start: base + bodyHeader + topicLength, count: body.count - bodyHeader - topicLength))
    }
}
