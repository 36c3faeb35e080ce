/// The members one route's documents sent, by position, so that a scan can
/// try the expected member first.
///
/// Meters send the same keys in the same order every time, and a key's
/// number keeps its shape (sign, digits before and after the point) from one
/// reading to the next. When the scanner reads a member the long way (find
/// the key's closing quote, hash it, look it up in the `KeyTable`, then the
/// value), it remembers the member as it stands in a compact document, at
/// its position: `"ua":ddd.ddd,`, the key's bytes, its quotes and colon and
/// the separator after the value exact, each digit of a number as "a digit"
/// (the first of several integer digits as "1 to 9"), or only `"id":` when the
/// value is no plain number or the member is longer than two words. At that
/// position in the next document the scan first checks the bytes at the
/// cursor against it, a few operations per word (see `Entry`); on a mismatch
/// it reads the member the long way from the same offset, and the position
/// learns it again.
///
/// A hit is exactly what the long way finds: the remembered key is plain
/// (no escape, no control or non-ASCII byte, hence no `"` before its closing
/// quote), so equal bytes are the same key and the match this shape's table,
/// which never changes, gave for it; digits, sign, point and separator in
/// those lanes are a number of the grammar the long way accepts, ending
/// where it would end. Where a member stands only decides whether it is
/// found fast, never what it means: a changed order, a missing, extra or
/// repeated key or a number of another shape costs the long way and a
/// relearned position, nothing else.
///
/// Bounded: `capacity` positions of one `Entry` each. Not thread-safe: its
/// owner (an `Engine`, one per route) scans with it from one thread at a time.
public final class DocumentShape {
    /// One remembered member, `length` bytes from its opening quote, checked
    /// as two little-endian words: with `d = word &- pattern`, lane by lane
    /// `d` must be 0 (exact: `add` 0x7F), at most 9 (a digit, pattern `0`,
    /// `add` 0x76) or at most 8 (a leading digit, pattern `1`, `add` 0x77), so
    /// a lane fails when `(d &+ add) | d` has its high bit set. Lanes past the
    /// member have pattern, add and mask 0. A borrow or a carry crosses into
    /// the next lane only out of a failing lane, so the lowest failing lane
    /// is always seen, and when none fails every lane's `d` is exact: a
    /// number without a leading digit lane (a leading digit is 1 to 9) is
    /// zero when its digit lanes' `d` are all 0.
    struct Entry {
        var pattern0: UInt64 = 0
        var add0: UInt64 = 0
        var mask0: UInt64 = 0
        var digits0: UInt64 = 0
        var pattern1: UInt64 = 0
        var add1: UInt64 = 0
        var mask1: UInt64 = 0
        var digits1: UInt64 = 0
        /// Bytes covered: `"key":` alone, or the whole member with its separator.
        var length: Int32 = 0
        /// The number's offsets from the member's start; `valueEnd` 0: the entry is the key alone.
        var valueStart: Int16 = 0
        var valueEnd: Int16 = 0
        var slot: Int16 = -1
        var ignored = false
        /// The separator is the object's `}`, not `,`.
        var closes = false
        /// The number has a leading digit lane, so it is not zero.
        var nonZero = false
    }

    /// Positions remembered per route: the KPM33B's longest document has 44 members.
    static let capacity = 64
    /// Longest member remembered: two words.
    static let maxLength = 16

    /// The table every match here came from; a scan with another table ignores this shape.
    let table: KeyTable
    let entries: UnsafeMutablePointer<Entry>
    /// Positions `0..<count` hold a remembered member.
    var count = 0

    public init(table: KeyTable) {
        self.table = table
        entries = .allocate(capacity: Self.capacity)
        entries.initialize(repeating: Entry(), count: Self.capacity)
    }

    deinit { entries.deallocate() }

    /// The entry for the member whose opening quote is at `start`, as the
    /// scanner read it: a plain key and its colon up to `valueStart`, then,
    /// if `valueEnd` is not 0, a number of the fast shape up to `valueEnd`
    /// and its separator (`,` or `}`). Nil when it does not fit in
    /// `maxLength` bytes, not even the key. `maxLength` bytes from `start`
    /// must be in `bytes`.
    static func entry(_ bytes: UnsafeRawBufferPointer, _ start: Int, valueStart: Int, valueEnd: Int,
                      _ match: KeyTable.Match) -> Entry? {
        var whole = valueEnd != 0 && valueEnd &+ 1 &- start <= maxLength
        if !whole && valueStart &- start > maxLength { return nil }
        var entry = Entry()
        entry.slot = Int16(truncatingIfNeeded: match.slot)
        entry.ignored = match.ignored
        entry.valueStart = Int16(truncatingIfNeeded: valueStart &- start)
        // The number's integer digits: the first of several is 1 to 9.
        var lead = -1
        if whole {
            let digits = bytes[valueStart] == UInt8(ascii: "-") ? valueStart &+ 1 : valueStart
            var k = digits
            while k < valueEnd && bytes[k] != UInt8(ascii: ".") { k &+= 1 }
            if k &- digits > 1 { lead = digits; entry.nonZero = true }
            entry.valueEnd = Int16(truncatingIfNeeded: valueEnd &- start)
            entry.closes = bytes[valueEnd] == UInt8(ascii: "}")
            whole = entry.closes || bytes[valueEnd] == UInt8(ascii: ",")
        }
        let end = whole ? valueEnd &+ 1 : valueStart
        if !whole { entry.valueEnd = 0; entry.closes = false; entry.nonZero = false }
        entry.length = Int32(truncatingIfNeeded: end &- start)
        for k in start..<end {
            let c = bytes[k]
            var pattern = UInt64(c), add: UInt64 = 0x7F, digit: UInt64 = 0
            if k >= valueStart && k < valueEnd && whole && c &- UInt8(ascii: "0") < 10 {
                (pattern, add, digit) = k == lead ? (0x31, 0x77, 0xFF) : (0x30, 0x76, 0xFF)
            }
            let shift = UInt64(truncatingIfNeeded: ((k &- start) & 7) &* 8)
            if k &- start < 8 {
                entry.pattern0 |= pattern &<< shift
                entry.add0 |= add &<< shift
                entry.mask0 |= 0x80 &<< shift
                entry.digits0 |= digit &<< shift
            } else {
                entry.pattern1 |= pattern &<< shift
                entry.add1 |= add &<< shift
                entry.mask1 |= 0x80 &<< shift
                entry.digits1 |= digit &<< shift
            }
        }
        return entry
    }
}
