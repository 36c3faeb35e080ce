internal import CCRC32C

/// CRC-32C (Castagnoli, reflected polynomial 0x82F63B78): the CPU's instruction
/// where it has one, otherwise slicing-by-16 in Swift.
///
/// The checksum of iSCSI, ext4 and SCTP: better error detection than CRC-32 for
/// the same cost. On x86-64 with SSE4.2 (asked of cpuid once) the `crc32`
/// instruction takes 8 bytes a step (`CCRC32C`: Swift cannot emit it); an append's
/// checksum of a 130-byte record went from about 465 instructions to about 60.
/// Elsewhere table slicing is the fast way: each step consumes 16 bytes with 16
/// table lookups that do not depend on each other, so the loop is bound by one load
/// latency and a tree of XORs per 16 bytes. Measured on the 2-core EPYC build
/// machine, a 650-byte record costs about 260 ns with 16 slices against about 355 ns
/// with 8. The 16 KiB of tables stay in the L1 cache. Both give the same checksums:
/// the journal's format does not depend on the machine that wrote it.
enum CRC32C {
    /// Whether `update` runs on the CPU's CRC-32C instruction (decided once).
    static let usesHardware = crc32c_hardware_available() != 0

    /// The sixteen 256-entry tables, one after the other: `table[k * 256 + b]`.
    ///
    /// Built once on first use and never written afterwards, which is why a shared
    /// unsafe pointer is fine here; a pointer rather than an array keeps the hot loop
    /// free of bounds checks and retain/release.
    nonisolated(unsafe) private static let table: UnsafePointer<UInt32> = {
        let t = UnsafeMutablePointer<UInt32>.allocate(capacity: 16 * 256)
        for i in 0..<256 {
            var c = UInt32(i)
            for _ in 0..<8 { c = (c & 1) != 0 ? (c >> 1) ^ 0x82F6_3B78 : c >> 1 }
            t[i] = c
        }
        // Table k advances the CRC of a byte followed by k zero bytes.
        for k in 1..<16 {
            for i in 0..<256 {
                let previous = t[(k - 1) * 256 + i]
                t[k * 256 + i] = (previous >> 8) ^ t[Int(previous & 0xFF)]
            }
        }
        return UnsafePointer(t)
    }()

    /// The CRC-32C of `bytes`, continuing from `crc` (0 to start; pass a previous result to chain).
    static func checksum(_ bytes: UnsafeRawBufferPointer, continuing crc: UInt32 = 0) -> UInt32 {
        guard let base = bytes.baseAddress else { return crc }
        return update(~crc, base, bytes.count) ^ 0xFFFF_FFFF
    }

    /// The CRC-32C of a byte array.
    static func checksum(_ bytes: [UInt8]) -> UInt32 {
        bytes.withUnsafeBytes { checksum($0) }
    }

    /// The raw update step on the inverted register `c`: the instruction when
    /// the CPU has it, the tables otherwise.
    @inline(__always)
    static func update(_ c: UInt32, _ base: UnsafeRawPointer, _ count: Int) -> UInt32 {
        usesHardware ? hardwareUpdate(c, base, count) : softwareUpdate(c, base, count)
    }

    /// The update step on the CPU's instruction; only where `usesHardware`.
    static func hardwareUpdate(_ c: UInt32, _ base: UnsafeRawPointer, _ count: Int) -> UInt32 {
        crc32c_hardware_update(c, base, count)
    }

    /// The update step by table slicing, on any CPU.
    static func softwareUpdate(_ c: UInt32, _ base: UnsafeRawPointer, _ count: Int) -> UInt32 {
        let t = table
        var crc = c
        var p = base
        var n = count
        while n >= 16 {
            let word0 = p.loadUnaligned(as: UInt64.self).littleEndian
            let word1 = p.loadUnaligned(fromByteOffset: 8, as: UInt64.self).littleEndian
            let a = UInt32(truncatingIfNeeded: word0) ^ crc
            let b = UInt32(truncatingIfNeeded: word0 &>> 32)
            let c = UInt32(truncatingIfNeeded: word1)
            let d = UInt32(truncatingIfNeeded: word1 &>> 32)
            // Byte j of the 16 (j = 0 first) goes through table 15 - j.
            crc = (t[15 &* 256 &+ Int(a & 0xFF)] ^ t[14 &* 256 &+ Int((a &>> 8) & 0xFF)]
                    ^ t[13 &* 256 &+ Int((a &>> 16) & 0xFF)] ^ t[12 &* 256 &+ Int(a &>> 24)])
                ^ (t[11 &* 256 &+ Int(b & 0xFF)] ^ t[10 &* 256 &+ Int((b &>> 8) & 0xFF)]
                    ^ t[9 &* 256 &+ Int((b &>> 16) & 0xFF)] ^ t[8 &* 256 &+ Int(b &>> 24)])
                ^ (t[7 &* 256 &+ Int(c & 0xFF)] ^ t[6 &* 256 &+ Int((c &>> 8) & 0xFF)]
                    ^ t[5 &* 256 &+ Int((c &>> 16) & 0xFF)] ^ t[4 &* 256 &+ Int(c &>> 24)])
                ^ (t[3 &* 256 &+ Int(d & 0xFF)] ^ t[2 &* 256 &+ Int((d &>> 8) & 0xFF)]
                    ^ t[1 &* 256 &+ Int((d &>> 16) & 0xFF)] ^ t[Int(d &>> 24)])
            p += 16
            n &-= 16
        }
        while n > 0 {
            crc = (crc &>> 8) ^ t[Int((crc ^ UInt32(p.load(as: UInt8.self))) & 0xFF)]
            p += 1
            n &-= 1
        }
        return crc
    }
}
