/// CRC-32C (Castagnoli, reflected polynomial 0x82F63B78) in pure Swift, slicing-by-8.
///
/// The checksum of iSCSI, ext4 and SCTP: better error detection than CRC-32 for
/// the same cost. Slicing-by-8 consumes eight bytes per step with eight table
/// lookups that do not depend on each other, so a 600-byte record costs a few
/// hundred nanoseconds at most instead of the ~2 µs of the bytewise loop.
enum CRC32C {
    /// The eight 256-entry tables, one after the other: `table[k * 256 + b]`.
    ///
    /// Built once on first use and never written afterwards, which is why a shared
    /// unsafe pointer is fine here; a pointer rather than an array keeps the hot loop
    /// free of bounds checks and retain/release.
    nonisolated(unsafe) private static let table: UnsafePointer<UInt32> = {
        let t = UnsafeMutablePointer<UInt32>.allocate(capacity: 8 * 256)
        for i in 0..<256 {
            var c = UInt32(i)
            for _ in 0..<8 { c = (c & 1) != 0 ? (c >> 1) ^ 0x82F6_3B78 : c >> 1 }
            t[i] = c
        }
        // Table k advances the CRC of a byte followed by k zero bytes.
        for k in 1..<8 {
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

    /// The raw update step on the inverted register `c`.
    static func update(_ c: UInt32, _ base: UnsafeRawPointer, _ count: Int) -> UInt32 {
        let t = table
        var crc = c
        var p = base
        var n = count
        while n >= 8 {
            let word = p.loadUnaligned(as: UInt64.self).littleEndian
            let low = UInt32(truncatingIfNeeded: word) ^ crc
            let high = UInt32(truncatingIfNeeded: word &>> 32)
            crc = t[7 * 256 + Int(low & 0xFF)]
                ^ t[6 * 256 + Int((low &>> 8) & 0xFF)]
                ^ t[5 * 256 + Int((low &>> 16) & 0xFF)]
                ^ t[4 * 256 + Int(low &>> 24)]
                ^ t[3 * 256 + Int(high & 0xFF)]
                ^ t[2 * 256 + Int((high &>> 8) & 0xFF)]
                ^ t[1 * 256 + Int((high &>> 16) & 0xFF)]
                ^ t[Int(high &>> 24)]
            p += 8
            n &-= 8
        }
        while n > 0 {
            crc = (crc &>> 8) ^ t[Int((crc ^ UInt32(p.load(as: UInt8.self))) & 0xFF)]
            p += 1
            n &-= 1
        }
        return crc
    }
}
