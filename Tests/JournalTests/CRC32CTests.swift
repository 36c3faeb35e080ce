import Testing
@testable import Journal

/// CRC-32C against published vectors and a bytewise reference.
@Suite struct CRC32CTests {
    /// RFC 3720 (iSCSI) appendix B.4 vectors and the classic check value.
    @Test func knownVectors() {
        #expect(CRC32C.checksum(Array("123456789".utf8)) == 0xE306_9283)
        #expect(CRC32C.checksum([]) == 0)
        #expect(CRC32C.checksum([UInt8](repeating: 0, count: 32)) == 0x8A91_36AA)
        #expect(CRC32C.checksum([UInt8](repeating: 0xFF, count: 32)) == 0x62A8_AB43)
        #expect(CRC32C.checksum((0..<32).map { UInt8($0) }) == 0x46DD_794E)
        #expect(CRC32C.checksum((0..<32).map { UInt8(31 - $0) }) == 0x113F_DB5C)
    }

    /// The bit-at-a-time definition.
    static func reference(_ bytes: [UInt8]) -> UInt32 {
        var crc: UInt32 = 0xFFFF_FFFF
        for byte in bytes {
            crc ^= UInt32(byte)
            for _ in 0..<8 { crc = crc & 1 != 0 ? (crc >> 1) ^ 0x82F6_3B78 : crc >> 1 }
        }
        return ~crc
    }

    /// The published vectors on each path this CPU has (the instruction, the tables), not only the one chosen.
    @Test func knownVectorsOnEachPath() {
        let vectors: [([UInt8], UInt32)] = [
            (Array("123456789".utf8), 0xE306_9283), ([], 0),
            ([UInt8](repeating: 0, count: 32), 0x8A91_36AA), ([UInt8](repeating: 0xFF, count: 32), 0x62A8_AB43),
            ((0..<32).map { UInt8($0) }, 0x46DD_794E), ((0..<32).map { UInt8(31 - $0) }, 0x113F_DB5C),
        ]
        for (bytes, expected) in vectors {
            for (name, step) in Self.paths {
                let crc = bytes.withUnsafeBytes { raw in
                    raw.baseAddress.map { step(0xFFFF_FFFF, $0, raw.count) ^ 0xFFFF_FFFF } ?? 0
                }
                #expect(crc == expected, "\(name), \(bytes.count) bytes")
            }
        }
    }

    /// On x86-64, where every CPU this runs on has SSE4.2, the instruction is the one used.
    @Test func usesTheInstructionOnX86() {
        #if arch(x86_64)
        #expect(CRC32C.usesHardware)
        #endif
    }

    /// The instruction and the tables agree on every length up to 300 at every
    /// alignment of 8, and on long random buffers: records written on one machine
    /// check on another.
    @Test func instructionAgreesWithTables() throws {
        try #require(CRC32C.usesHardware, "this CPU has no CRC-32C instruction")
        // Knuth's multiplicative hash: bytes that look random, the same every run.
        let data = (0..<(1 << 16) + 8).map { UInt8(truncatingIfNeeded: ($0 &* 2_654_435_761) >> 13) }
        data.withUnsafeBytes { raw in
            let base = raw.baseAddress!
            for start in 0..<8 {
                for length in 0...300 {
                    let seed = UInt32(truncatingIfNeeded: (start * 301 + length) &* 2_654_435_761)
                    #expect(CRC32C.hardwareUpdate(seed, base + start, length) == CRC32C.softwareUpdate(seed, base + start, length),
                            "start \(start) length \(length)")
                }
            }
            for length in [1 << 10, 4093, 1 << 16] {
                #expect(CRC32C.hardwareUpdate(0xFFFF_FFFF, base + 3, length) == CRC32C.softwareUpdate(0xFFFF_FFFF, base + 3, length))
            }
        }
    }

    /// Each update step this CPU can run, by name.
    static var paths: [(String, (UInt32, UnsafeRawPointer, Int) -> UInt32)] {
        var list: [(String, (UInt32, UnsafeRawPointer, Int) -> UInt32)] = [("tables", CRC32C.softwareUpdate)]
        if CRC32C.usesHardware { list.append(("instruction", CRC32C.hardwareUpdate)) }
        return list
    }

    /// The chosen path agrees with the definition for every length and alignment up to 100, and chaining works.
    @Test func agreesWithReference() {
        let data = (0..<120).map { UInt8(truncatingIfNeeded: $0 &* 151 &+ 7) }
        for start in 0..<8 {
            for length in 0...(100 - start) {
                let slice = Array(data[start ..< start + length])
                #expect(CRC32C.checksum(slice) == Self.reference(slice), "start \(start) length \(length)")
            }
        }
        let first = data.withUnsafeBytes { CRC32C.checksum(UnsafeRawBufferPointer(rebasing: $0[0..<37])) }
        let chained = data.withUnsafeBytes { CRC32C.checksum(UnsafeRawBufferPointer(rebasing: $0[37...]), continuing: first) }
        #expect(chained == Self.reference(data))
    }
}
