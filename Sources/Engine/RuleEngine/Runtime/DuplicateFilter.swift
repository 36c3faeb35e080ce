/// Remembers the last `capacity` keys; the oldest is forgotten first.
///
/// Keys are already well-mixed 64-bit hashes, so an open-addressing table
/// indexed by the key itself (linear probing, backward-shift deletion) beats
/// `Set`, which would hash them again.
struct DuplicateFilter {
    private var table: [UInt64]      // 0 = empty; key 0 is stored as 1
    private let mask: Int
    private var ring: [UInt64]
    private var next = 0
    private var filled = false

    init(capacity: Int) {
        var size = 16
        while size < capacity * 2 { size <<= 1 }
        table = [UInt64](repeating: 0, count: size)
        mask = size - 1
        ring = [UInt64](repeating: 0, count: capacity)
    }

    /// Inserts `key`; false if it was already remembered.
    mutating func insert(_ key: UInt64) -> Bool {
        let k = key == 0 ? 1 : key
        var b = Int(truncatingIfNeeded: k) & mask
        while table[b] != 0 {
            if table[b] == k { return false }
            b = (b + 1) & mask
        }
        if filled {
            remove(ring[next])
            // The removal may have shifted entries; find the slot again
            // (without one, `b` is the empty slot the search ended on).
            b = Int(truncatingIfNeeded: k) & mask
            while table[b] != 0 { b = (b + 1) & mask }
        }
        table[b] = k
        ring[next] = k
        next += 1
        if next == ring.count { next = 0; filled = true }
        return true
    }

    private mutating func remove(_ k: UInt64) {
        var b = Int(truncatingIfNeeded: k) & mask
        while table[b] != k {
            if table[b] == 0 { return }
            b = (b + 1) & mask
        }
        // Backward-shift: pull later entries of the run into the hole.
        var hole = b
        var j = (b + 1) & mask
        while table[j] != 0 {
            let home = Int(truncatingIfNeeded: table[j]) & mask
            // Move table[j] into the hole unless its home lies cyclically in (hole, j].
            let inRange = hole <= j ? (home > hole && home <= j) : (home > hole || home <= j)
            if !inRange {
                table[hole] = table[j]
                hole = j
            }
            j = (j + 1) & mask
        }
        table[hole] = 0
    }
}

/// The key of one reading for its route's `DuplicateFilter`: the route, the
/// topic's hash and the key fields' raw bytes, mixed eight bytes at a time
/// (`KeyHash.chunk`). Each field is led by its kind and length, so that two
/// different sequences of fields never run together.
struct DuplicateKey {
    private(set) var value: UInt64

    init(route: Int) {
        value = KeyHash.chunk(KeyHash.k, UInt64(truncatingIfNeeded: route))
    }

    mutating func add(_ word: UInt64) {
        value = KeyHash.chunk(value, word)
    }

    mutating func add(_ buffer: UnsafeRawBufferPointer, _ slice: FieldSlice) {
        let missing = slice.kind == .missing
        let start = Int(slice.start), end = missing ? start : Int(slice.end)
        value = KeyHash.chunk(value, UInt64(slice.kind.rawValue) | UInt64(truncatingIfNeeded: end &- start) &<< 8)
        var k = start
        while k < end {
            let rest = end &- k
            // A last word short of 8 bytes, read whole when the buffer goes
            // on (a value is followed by at least its object's `}`) and cut
            // to its bytes: the word `loadWord` makes, without its byte loop.
            let word = rest < 8 && k &+ 8 <= buffer.count
                ? UInt64(littleEndian: buffer.loadUnaligned(fromByteOffset: k, as: UInt64.self)) & (1 &<< UInt64(rest &* 8) &- 1)
                : loadWord(buffer, k, end)
            value = KeyHash.chunk(value, word)
            k &+= 8
        }
    }
}
