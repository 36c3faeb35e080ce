/// The engine's meters by the bytes of their id, as they stand in a payload.
///
/// A reading finds its meter without making a `String` of the id or hashing
/// one with `Hasher`: the id's `KeyHash` (a multiply per 8 bytes) picks a
/// bucket (its high bits) of an open-addressing table, and the bytes are compared with the
/// stored id. Entries are only added; the table grows by doubling, so its
/// size follows the meters remembered (which `MeterLimit` bounds).
struct DeviceIndex<Value> {
    /// Per bucket, `entry + 1`; 0 is an empty bucket.
    private var buckets: [Int32] = Array(repeating: 0, count: 16)
    private var hashes: [UInt64] = []
    /// Every id's bytes back to back; entry `e` is `keyStarts[e]..<keyStarts[e + 1]`.
    private var keyBytes: [UInt8] = []
    private var keyStarts: [Int] = [0]
    private(set) var values: [Value] = []

    var count: Int { values.count }

    /// The hash `find` and `insert` take for `id`.
    @inline(__always)
    static func hash(_ id: UnsafeRawBufferPointer) -> UInt64 {
        KeyHash.of(id, 0, id.count).hash
    }

    /// The value stored for `id` (hashed by `hash`), if any.
    func find(_ id: UnsafeRawBufferPointer, hash: UInt64) -> Value? {
        let mask = buckets.count - 1
        var b = Int(truncatingIfNeeded: hash &>> 32) & mask
        while true {
            let e = Int(buckets[b]) - 1
            if e < 0 { return nil }
            if hashes[e] == hash && same(e, id) { return values[e] }
            b = (b + 1) & mask
        }
    }

    /// Adds `value` for `id`, which `find` did not know.
    mutating func insert(_ id: UnsafeRawBufferPointer, hash: UInt64, _ value: Value) {
        if (values.count + 1) * 2 > buckets.count { grow() }
        hashes.append(hash)
        keyBytes.append(contentsOf: id)
        keyStarts.append(keyBytes.count)
        values.append(value)
        place(values.count - 1)
    }

    private func same(_ e: Int, _ id: UnsafeRawBufferPointer) -> Bool {
        let start = keyStarts[e]
        guard keyStarts[e + 1] - start == id.count else { return false }
        return keyBytes.withUnsafeBytes { stored in
            let n = id.count
            guard n >= 8 else {
                for k in 0..<n where stored[start &+ k] != id[k] { return false }
                return true
            }
            // Eight bytes at a time, the last word overlapping the one before.
            let a = stored.baseAddress! + start, b = id.baseAddress!
            var k = 0
            while k &+ 8 < n {
                if a.loadUnaligned(fromByteOffset: k, as: UInt64.self) != b.loadUnaligned(fromByteOffset: k, as: UInt64.self) { return false }
                k &+= 8
            }
            return a.loadUnaligned(fromByteOffset: n &- 8, as: UInt64.self) == b.loadUnaligned(fromByteOffset: n &- 8, as: UInt64.self)
        }
    }

    private mutating func place(_ e: Int) {
        let mask = buckets.count - 1
        var b = Int(truncatingIfNeeded: hashes[e] &>> 32) & mask
        while buckets[b] != 0 { b = (b + 1) & mask }
        buckets[b] = Int32(e + 1)
    }

    private mutating func grow() {
        buckets = Array(repeating: 0, count: buckets.count * 2)
        for e in values.indices { place(e) }
    }
}
