import Testing
@testable import RuleEngine

/// The engine's byte-keyed meter table and its duplicate keys: the two
/// hashes the per-reading path computes instead of hashing a `String`.
@Suite struct DeviceIndexTests {
    static func find(_ index: DeviceIndex<Int>, _ id: String) -> Int? {
        let bytes = Array(id.utf8)
        return bytes.withUnsafeBytes { index.find($0, hash: DeviceIndex<Int>.hash($0)) }
    }

    static func insert(_ index: inout DeviceIndex<Int>, _ id: String, _ value: Int) {
        let bytes = Array(id.utf8)
        bytes.withUnsafeBytes { index.insert($0, hash: DeviceIndex<Int>.hash($0), value) }
    }

    /// Through several doublings, every id finds its own value and no other
    /// id finds one: ids that differ in one digit, in length only, or by a
    /// trailing zero byte (which the hash leaves out; the bytes decide).
    @Test func findsWhatWasInsertedAndNothingElse() {
        var index = DeviceIndex<Int>()
        let ids = (0..<5_000).map { "33B12259\(String($0 + 10_000))" }
        for (i, id) in ids.enumerated() {
            #expect(Self.find(index, id) == nil)
            Self.insert(&index, id, i)
        }
        #expect(index.count == ids.count)
        for (i, id) in ids.enumerated() { #expect(Self.find(index, id) == i) }
        for id in ["33B1225910000x", "33B122591000", "33B1225910000\u{0}", "", "33B1225915000"] {
            #expect(Self.find(index, id) == nil, "\(id.debugDescription)")
        }
        Self.insert(&index, "", -1)
        #expect(Self.find(index, "") == -1)
        #expect(index.values.prefix(3) == [0, 1, 2])
    }

    /// The bytes decide, whatever the hash says: an id one byte away from a
    /// stored one, looked up under the stored one's hash, finds nothing —
    /// at every position of ids from 1 to 40 bytes (the compare reads
    /// eight bytes at a time, the last word overlapping).
    @Test func theBytesDecideAtEveryPosition() {
        for length in 1...40 {
            var index = DeviceIndex<Int>()
            let id = (0..<length).map { UInt8(48 + $0 % 10) }
            let hash = id.withUnsafeBytes { DeviceIndex<Int>.hash($0) }
            id.withUnsafeBytes { index.insert($0, hash: hash, length) }
            #expect(id.withUnsafeBytes { index.find($0, hash: hash) } == length)
            for k in 0..<length {
                var other = id
                other[k] ^= 0x20
                #expect(other.withUnsafeBytes { index.find($0, hash: hash) } == nil, "\(length) bytes, byte \(k) differs")
            }
            #expect(Array(id.dropLast()).withUnsafeBytes { index.find($0, hash: hash) } == nil)
            #expect((id + [48]).withUnsafeBytes { index.find($0, hash: hash) } == nil)
        }
    }

    static func key(_ fields: [String]) -> UInt64 {
        let text = fields.map { "\"\($0)\"" }.joined()
        let bytes = Array(text.utf8)
        var key = DuplicateKey(route: 0)
        var at = 0
        return bytes.withUnsafeBytes { buffer in
            for f in fields {
                let end = at + f.utf8.count + 2
                key.add(buffer, FieldSlice(start: Int32(at), end: Int32(end), kind: .string))
                at = end
            }
            return key.value
        }
    }

    /// Fields that run together the same way, fields longer than a word, and
    /// a missing field against an empty one give different keys.
    @Test func duplicateKeysKeepFieldBoundaries() {
        #expect(Self.key(["ab", "c"]) != Self.key(["a", "bc"]))
        #expect(Self.key(["33B1225950027", "20260112163900"]) == Self.key(["33B1225950027", "20260112163900"]))
        #expect(Self.key(["33B1225950027", "20260112163900"]) != Self.key(["33B1225950027", "20260112163901"]))
        #expect(Self.key(["33B1225950027", "20260112163900"]) != Self.key(["33B1225950028", "20260112163900"]))
        var missing = DuplicateKey(route: 0)
        var empty = DuplicateKey(route: 0)
        let bytes: [UInt8] = Array("\"\"".utf8)
        bytes.withUnsafeBytes { buffer in
            missing.add(buffer, FieldSlice())
            empty.add(buffer, FieldSlice(start: 0, end: 2, kind: .string))
        }
        #expect(missing.value != empty.value)
        #expect(DuplicateKey(route: 0).value != DuplicateKey(route: 1).value)
    }

    /// A value's key is its bytes' alone: the same whether the buffer ends
    /// with the value (its last word read byte by byte) or goes on with
    /// other bytes (read as a whole word and cut), for every length to 30.
    @Test func aKeyIsTheSameWhateverFollowsTheValue() {
        for length in 1...30 {
            let value = (0..<length).map { UInt8(65 + $0 % 26) }
            func key(_ buffer: [UInt8]) -> UInt64 {
                var key = DuplicateKey(route: 3)
                buffer.withUnsafeBytes { key.add($0, FieldSlice(start: 0, end: Int32(length), kind: .number)) }
                return key.value
            }
            let alone = key(value)
            for trailing: [UInt8] in [[0x7D], Array(repeating: 0xFF, count: 9), Array(repeating: 0, count: 16), Array("\",\"isend\":\"1\"}".utf8)] {
                #expect(key(value + trailing) == alone, "\(length) bytes, then \(trailing)")
            }
            var other = value
            other[length - 1] ^= 1
            #expect(key(other + [0x7D, 0, 0, 0, 0, 0, 0, 0, 0]) != alone, "\(length) bytes, the last one changed")
        }
    }
}
