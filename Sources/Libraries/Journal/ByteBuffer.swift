import Glibc

/// A growable block of raw bytes owned by one journal: the write buffer and the read buffers.
///
/// Raw memory rather than `[UInt8]` because records are encoded in place (header,
/// then body, then the checksum over the body) and read in place, and the hot path
/// should pay neither uniqueness checks nor bounds checks for that. One thread.
final class ByteBuffer {
    /// The bytes; valid for `count` bytes, allocated for `capacity`.
    private(set) var base: UnsafeMutableRawPointer
    private(set) var capacity: Int
    /// Bytes in use, starting at `base`.
    var count = 0

    /// An empty buffer with room for `capacity` bytes.
    init(capacity: Int) {
        self.capacity = max(capacity, 64)
        base = malloc(self.capacity)!
    }

    deinit { free(base) }

    /// Makes room for `extra` more bytes after `count`, growing by doubling.
    func reserve(_ extra: Int) {
        let needed = count + extra
        if needed <= capacity { return }
        var newCapacity = capacity
        while newCapacity < needed { newCapacity *= 2 }
        base = realloc(base, newCapacity)!
        capacity = newCapacity
    }

    /// Shrinks the allocation back to `capacity` bytes if it grew beyond it and the contents fit.
    func shrink(to target: Int) {
        guard capacity > target, count <= target else { return }
        base = realloc(base, target)!
        capacity = target
    }

    /// Drops the first `n` bytes, moving the rest to the front.
    func removeFirst(_ n: Int) {
        precondition(n <= count)
        if n < count { memmove(base, base + n, count - n) }
        count -= n
    }
}
