/// The members one route's documents sent, by position, so that a scan can
/// try the expected member first.
///
/// Meters send the same keys in the same order every time, and a key's value
/// keeps its shape (a number's sign and digits before and after the point, a
/// string's length) from one reading to the next. When the scanner reads a
/// member the long way (find the key's closing quote, hash it, look it up in
/// the `KeyTable`, then the value), it remembers the member as it stands in a
/// compact document, at its position: `"ua":ddd.ddd,`, the key's bytes, its
/// quotes and colon and the separator after the value exact, each digit of a
/// number as "a digit" (the first of several integer digits as "1 to 9"),
/// each byte of a plain string as one of three ranges of plain bytes; or
/// only `"key":` when the value is neither or the member is longer than
/// three words. At that position in the next document the scan first checks
/// the bytes at the cursor against it, a few operations per word (see
/// `Entry`), then against the one the position had before; on a mismatch
/// it reads the member the long way from the same offset, and the position
/// learns it as its newest.
///
/// A hit is exactly what the long way finds: the remembered key is plain
/// (no escape, no control or non-ASCII byte, hence no `"` before its closing
/// quote), so equal bytes are the same key and the match this shape's table,
/// which never changes, gave for it; digits, sign, point and separator in
/// those lanes are a number of the grammar the long way accepts, ending
/// where it would end, and string lanes hold only bytes its plain strings
/// hold, so the string ends at the same quote. Where a member stands only
/// decides whether it is found fast, never what it means: a changed order, a
/// missing, extra or repeated key or a value of another shape costs the long
/// way and a relearned position, nothing else.
///
/// Bounded: `capacity` positions of two `Entry`s each. Not thread-safe: its
/// owner (an `Engine`, one per route) scans with it from one thread at a time.
public final class DocumentShape {
    /// One remembered member, `length` bytes from its opening quote, checked
    /// as up to three little-endian words: with `d = word &- pattern`, a lane
    /// passes when `d` is at most its range `r` (the byte is one of
    /// `pattern...pattern + r`), that is when `(d &+ add) | d` has its high
    /// bit clear, `add` being `0x80 - (r + 1)`: 0x7F for an exact byte, 0x76
    /// for a digit (pattern `0`), 0x77 for a leading digit (pattern `1`), and
    /// for a plain string byte one of ` !`, `#`...`[` or `]`...DEL (no range
    /// holds `"` or `\`). Lanes past the member have pattern, add and mask
    /// 0; `mask2` is 0 for a member of two words or less. A borrow or a carry
    /// crosses into the next lane only out of a failing lane, so the lowest
    /// failing lane is always seen, and when none fails every lane's `d` is
    /// exact: a number without a leading digit lane is zero when its digit
    /// lanes' `d` are all 0.
    struct Entry {
        // The default entry never matches: lane 0 with `add` 0x80 fails whatever its byte.
        var pattern0: UInt64 = 0
        var add0: UInt64 = 0x80
        var mask0: UInt64 = 0x80
        var pattern1: UInt64 = 0
        var add1: UInt64 = 0
        var mask1: UInt64 = 0
        var pattern2: UInt64 = 0
        var add2: UInt64 = 0
        var mask2: UInt64 = 0
        var digits0: UInt64 = 0
        var digits1: UInt64 = 0
        var digits2: UInt64 = 0
        /// Bytes covered: `"key":` alone, or the whole member with its separator.
        var length: Int32 = 0
        /// The value's offsets from the member's start; `valueEnd` 0: the entry is the key alone.
        var valueStart: Int16 = 0
        var valueEnd: Int16 = 0
        var slot: Int16 = -1
        var kind = ValueKind.number
        var ignored = false
        /// The separator is the object's `}`, not `,`.
        var closes = false
        /// What the digit lanes' `d` are for a zero: 0, or all ones (never
        /// met) when the value cannot be zero: a string, or a number with a
        /// leading digit lane.
        var zero: UInt64 = 0

        /// Sets lane `lane` (0..<24) to accept `pattern...pattern + range`.
        mutating func set(_ lane: Int, _ pattern: UInt8, range: UInt8 = 0, digit: Bool = false) {
            let shift = UInt64(truncatingIfNeeded: (lane & 7) &* 8)
            let p = UInt64(pattern) &<< shift, a = UInt64(0x7F &- range) &<< shift
            let m = UInt64(0x80) &<< shift, z = digit ? UInt64(0xFF) &<< shift : 0
            switch lane &>> 3 {
            case 0: pattern0 |= p; add0 |= a; mask0 |= m; digits0 |= z
            case 1: pattern1 |= p; add1 |= a; mask1 |= m; digits1 |= z
            default: pattern2 |= p; add2 |= a; mask2 |= m; digits2 |= z
            }
        }
    }

    /// Positions remembered per route: the KPM33B's longest document has 44 members.
    static let capacity = 64
    /// Bytes two words check: at least this many from the cursor must be in the buffer.
    static let shortLength = 16
    /// Longest member remembered: three words.
    static let maxLength = 24

    /// The table every match here came from; a scan with another table ignores this shape.
    let table: KeyTable
    /// Two rows of `capacity` positions and one more that never matches (a
    /// scan's position stops there once a document has more members): each
    /// position's newest entry, then the one before it, so that meters whose
    /// numbers differ in shape, sending in turn, are each found fast.
    let entries: UnsafeMutablePointer<Entry>

    public init(table: KeyTable) {
        self.table = table
        entries = .allocate(capacity: 2 * (Self.capacity + 1))
        entries.initialize(repeating: Entry(), count: 2 * (Self.capacity + 1))
    }

    deinit { entries.deallocate() }

    /// What a scan without a shape reads: a position of two entries that never match.
    nonisolated(unsafe) static let none: UnsafeMutablePointer<Entry> = {
        let p = UnsafeMutablePointer<Entry>.allocate(capacity: 2)
        p.initialize(repeating: Entry(), count: 2)
        return p
    }()

    /// Entries written since the shape was made: a steady stream stops adding to it.
    var learnings = 0

    /// The positions that hold a remembered member.
    var learned: Int { (0..<Self.capacity).filter { entries[$0].length > 0 }.count }

    /// The entry for the member whose opening quote is at `start`, as the
    /// scanner read it: a plain key and its colon up to `valueStart`, then a
    /// value up to `valueEnd` of `kind` `.number` (of the fast shape) or
    /// `.string` (plain) and its separator, or (`kind` anything else) only
    /// the key. Only the key too when the separator is neither `,` nor `}`
    /// or the member is longer than `maxLength`; nil when even the key is.
    /// The bytes up to the separator must be in `bytes`.
    static func entry(_ bytes: UnsafeRawBufferPointer, _ start: Int, valueStart: Int, valueEnd: Int,
                      kind: ValueKind, _ match: KeyTable.Match) -> Entry? {
        var whole = (kind == .number || kind == .string) && valueEnd &+ 1 &- start <= maxLength
        if whole { whole = bytes[valueEnd] == UInt8(ascii: ",") || bytes[valueEnd] == UInt8(ascii: "}") }
        let end = whole ? valueEnd &+ 1 : valueStart
        if end &- start > maxLength { return nil }
        var entry = Entry()
        (entry.add0, entry.mask0) = (0, 0)
        entry.slot = Int16(truncatingIfNeeded: match.slot)
        entry.ignored = match.ignored
        entry.length = Int32(truncatingIfNeeded: end &- start)
        entry.valueStart = Int16(truncatingIfNeeded: valueStart &- start)
        for k in start..<valueStart { entry.set(k &- start, bytes[k]) }
        guard whole else { return entry }
        entry.valueEnd = Int16(truncatingIfNeeded: valueEnd &- start)
        entry.kind = kind
        entry.closes = bytes[valueEnd] == UInt8(ascii: "}")
        entry.set(valueEnd &- start, bytes[valueEnd])
        if kind == .string {
            entry.zero = ~0
            entry.set(valueStart &- start, UInt8(ascii: "\""))
            entry.set(valueEnd &- 1 &- start, UInt8(ascii: "\""))
            for k in valueStart &+ 1..<valueEnd &- 1 {
                let c = bytes[k]
                switch c {
                case 0x20...0x21: entry.set(k &- start, 0x20, range: 0x01)
                case 0x23...0x5B: entry.set(k &- start, 0x23, range: 0x38)
                default: entry.set(k &- start, 0x5D, range: 0x22)   // 0x5D...0x7F: the scanner's plain strings hold no other byte
                }
            }
            return entry
        }
        // A number: the first of several integer digits is 1 to 9.
        let digits = bytes[valueStart] == UInt8(ascii: "-") ? valueStart &+ 1 : valueStart
        var point = digits
        while point < valueEnd && bytes[point] != UInt8(ascii: ".") { point &+= 1 }
        for k in valueStart..<valueEnd {
            let c = bytes[k]
            if c &- UInt8(ascii: "0") >= 10 {
                entry.set(k &- start, c)   // `-` or `.`
            } else if k == digits && point &- digits > 1 {
                entry.zero = ~0
                entry.set(k &- start, UInt8(ascii: "1"), range: 8, digit: true)
            } else {
                entry.set(k &- start, UInt8(ascii: "0"), range: 9, digit: true)
            }
        }
        return entry
    }
}
