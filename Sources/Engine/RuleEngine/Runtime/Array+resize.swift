extension Array where Element == UInt8 {
    /// Sets the count to `n`, keeping the storage when it is unique and
    /// large enough; new bytes are zero. A reused buffer is usually within a
    /// few bytes of the size wanted: those are added or removed one by one,
    /// which is cheaper than a range replacement.
    @inline(__always)
    mutating func resize(to n: Int) {
        var delta = n - count
        if delta > 0 {
            if delta > 8 { append(contentsOf: repeatElement(0, count: delta)); return }
            while delta > 0 { append(0); delta -= 1 }
        } else if delta < 0 {
            if delta < -8 { removeSubrange(n...); return }
            while delta < 0 { removeLast(); delta += 1 }
        }
    }
}
