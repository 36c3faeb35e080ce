/// The compiled set of top-level keys one route cares about.
///
/// Built once at compile time. Lookup is an open-addressing table over a cheap
/// hash of the key bytes (`KeyHash`); keys are a few bytes long, so this beats
/// hashing a `String` by a wide margin and never allocates.
public final class KeyTable: @unchecked Sendable {
    /// One bucket, 16 bytes. For a key under 8 bytes, the common case, `tail`
    /// is the whole key, so two compares decide a match; longer keys then
    /// compare their bytes in `keyBytes` from `keyOffsets[bucket]`.
    struct Entry {
        /// The key's last `length % 8` bytes as a little-endian word (see `KeyHash`).
        var tail: UInt64 = 0
        /// `-1` marks an empty bucket.
        var length: Int32 = -1
        /// The value slot, or `-1` for keys that are only flagged.
        var slot: Int16 = -1
        /// Whether the key's value is ignored for the all-zero test.
        var ignored = false
    }

    // Immutable after init, so sharing across threads is safe. Raw buffers,
    // not arrays: a lookup then touches no reference counts and no closures.
    private let buckets: UnsafeMutableBufferPointer<Entry>
    private let keyOffsets: UnsafeMutableBufferPointer<Int32>
    private let keyBytes: UnsafeMutableBufferPointer<UInt8>
    private let mask: Int
    /// A bucket is the hash's top bits: those of a product depend on every key byte.
    private let shift: UInt64
    /// Number of value slots a scan fills.
    public let slotCount: Int

    /// - Parameters:
    ///   - slots: the wanted keys; the scan fills slot `i` for `slots[i]`.
    ///   - ignoredForZero: keys whose values do not count for the all-zero test.
    public init(slots: [String], ignoredForZero: Set<String>) {
        var keys: [(key: [UInt8], slot: Int16, ignored: Bool)] = []
        for (i, key) in slots.enumerated() {
            keys.append((Array(key.utf8), Int16(i), ignoredForZero.contains(key)))
        }
        for key in ignoredForZero.sorted() where !slots.contains(key) {
            keys.append((Array(key.utf8), -1, true))
        }
        var size = 8, bits: UInt64 = 3
        while size < keys.count * 4 { size <<= 1; bits += 1 }
        var buckets = [Entry](repeating: Entry(), count: size)
        var offsets = [Int32](repeating: 0, count: size)
        var bytes: [UInt8] = []
        for entry in keys {
            let (hash, tail) = entry.key.withUnsafeBytes { KeyHash.of($0, 0, $0.count) }
            var b = Int(hash >> (64 - bits))
            // Linear probing in insertion order: a repeated key resolves to its first entry.
            while buckets[b].length >= 0 { b = (b + 1) & (size - 1) }
            buckets[b] = Entry(tail: tail, length: Int32(entry.key.count), slot: entry.slot, ignored: entry.ignored)
            offsets[b] = Int32(bytes.count)
            bytes += entry.key
        }
        func copy<T>(_ a: [T]) -> UnsafeMutableBufferPointer<T> {
            let p = UnsafeMutableBufferPointer<T>.allocate(capacity: max(1, a.count))
            _ = p.initialize(from: a)
            return p
        }
        self.buckets = copy(buckets)
        self.keyOffsets = copy(offsets)
        self.keyBytes = copy(bytes)
        self.mask = size - 1
        self.shift = 64 - bits
        self.slotCount = slots.count
    }

    deinit {
        buckets.deallocate()
        keyOffsets.deallocate()
        keyBytes.deallocate()
    }

    /// What a key means to a scan: the slot its value fills (`-1`: none) and
    /// whether the value is left out of the all-zero test.
    struct Match {
        var slot: Int
        var ignored: Bool
        /// A key the table does not hold: no slot, and its value counts.
        static let unknown = Match(slot: -1, ignored: false)
    }

    /// The match for the key bytes `start..<end`.
    func lookup(_ bytes: UnsafeRawBufferPointer, _ start: Int, _ end: Int) -> Match {
        let (hash, tail) = KeyHash.of(bytes, start, end)
        return lookup(hash: hash, tail: tail, bytes, start, end)
    }

    /// Lookup with the key's `KeyHash` and tail already computed (the scanner hashes while it reads).
    @inline(__always)
    func lookup(hash: UInt64, tail: UInt64, _ bytes: UnsafeRawBufferPointer, _ start: Int, _ end: Int) -> Match {
        let length = end &- start
        var b = Int(truncatingIfNeeded: hash &>> shift)
        while true {
            let e = buckets[b]
            if Int(e.length) == length && e.tail == tail && (length < 8 || sameBytes(b, bytes, start, length)) {
                return Match(slot: Int(e.slot), ignored: e.ignored)
            }
            if e.length < 0 { return .unknown }
            b = (b &+ 1) & mask
        }
    }

    /// Whether a long key's bytes equal those of the entry in bucket `b`.
    private func sameBytes(_ b: Int, _ bytes: UnsafeRawBufferPointer, _ start: Int, _ length: Int) -> Bool {
        let offset = Int(keyOffsets[b])
        for k in 0..<length where keyBytes[offset + k] != bytes[start + k] { return false }
        return true
    }

    func lookup(decodedKey: [UInt8]) -> Match {
        decodedKey.withUnsafeBytes { lookup($0, 0, $0.count) }
    }
}
