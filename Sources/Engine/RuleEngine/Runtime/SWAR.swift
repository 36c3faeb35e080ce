// MARK: SWAR: eight bytes per step in a UInt64
//
// A word holds bytes `at..<at+8` with byte `at` in the lowest lane. The tests
// below set the high bit (0x80) of every lane that stops a run. Only the
// lowest set lane is exact: a borrow or carry can flag lanes above it, never
// below, so a run's length is `trailingZeroBitCount / 8` of the stop mask.
// Offsets are payload offsets, far from overflow, so they use `&+`.

/// 0x01 in every lane; `c &* lanes` repeats byte `c` in every lane.
private let lanes: UInt64 = 0x0101_0101_0101_0101
private let highBits: UInt64 = 0x8080_8080_8080_8080

/// The bytes `at..<min(at + 8, end)` as a little-endian word; lanes at or past
/// `end` are zero, and every run below stops at a zero byte. Big-endian
/// machines get the same word through the byte swap of `littleEndian`.
@inline(__always)
func loadWord(_ bytes: UnsafeRawBufferPointer, _ at: Int, _ end: Int) -> UInt64 {
    if _fastPath(end &- at >= 8) {
        return UInt64(littleEndian: bytes.loadUnaligned(fromByteOffset: at, as: UInt64.self))
    }
    return loadShortWord(bytes, at, end)
}

/// `loadWord` near the end: byte by byte, out of line to keep the hot path short.
@inline(never)
private func loadShortWord(_ bytes: UnsafeRawBufferPointer, _ at: Int, _ end: Int) -> UInt64 {
    var w: UInt64 = 0
    var k = end
    while k > at {
        k -= 1
        w = w << 8 | UInt64(bytes[k])
    }
    return w
}

/// Lane `index` (0...7) of `w`.
@inline(__always)
private func lane(_ w: UInt64, _ index: Int) -> UInt8 {
    UInt8(truncatingIfNeeded: w &>> UInt64(truncatingIfNeeded: index &* 8))
}

/// The number of lanes before the first stop (`stops` is not 0).
@inline(__always)
private func leadingLanes(_ stops: UInt64) -> Int {
    stops.trailingZeroBitCount &>> 3
}

/// A mask of the lanes before the first stop (all lanes when there is none).
@inline(__always)
private func lanesBefore(_ stops: UInt64) -> UInt64 {
    // stops & -stops keeps the lowest stop bit, bit 7 of its lane; >> 7 makes
    // it bit 0 of that lane, and - 1 sets every bit below it.
    ((stops & (0 &- stops)) &>> 7) &- 1
}

/// Stop lanes of a plain string: `"`, `\`, a control byte (< 0x20) or a non-ASCII byte (>= 0x80).
@inline(__always)
private func stringStops(_ w: UInt64) -> UInt64 {
    let quote = w ^ (0x22 &* lanes)       // lanes holding `"` become 0
    let backslash = w ^ (0x5C &* lanes)   // lanes holding `\` become 0
    // x - 1 sets the high bit of a lane that was 0; w - 0x20 that of a lane
    // below 0x20; w has it in a lane >= 0x80. An ASCII lane that is none of
    // these sets nothing and borrows nothing, so no stop is flagged early.
    return ((quote &- lanes) | (backslash &- lanes) | (w &- 0x20 &* lanes) | w) & highBits
}

/// A plain string run from `at`: the offset of its first stop and the byte
/// there (0 if the buffer ends first; then the offset is `n`).
@inline(__always)
func stringRun(_ bytes: UnsafeRawBufferPointer, _ at: Int, _ n: Int) -> (end: Int, stop: UInt8) {
    var k = at
    var w = loadWord(bytes, k, n)
    var stops = stringStops(w)
    while stops == 0 {
        k &+= 8
        w = loadWord(bytes, k, n)
        stops = stringStops(w)
    }
    let count = leadingLanes(stops)
    return (k &+ count, lane(w, count))
}

/// Stop lanes of a digit run: any byte but `0`...`9`. Also returns `t`, the
/// word with every lane xor `0`: digits become 0...9, so `t` masked to the
/// digit lanes is 0 exactly when every digit is `0`.
@inline(__always)
private func digitStops(_ w: UInt64) -> (stops: UInt64, t: UInt64) {
    let t = w ^ (0x30 &* lanes)
    // t + 0x76 reaches 0x80 exactly when t >= 10; a lane >= 0x80 (whose
    // + 0x76 may carry upward) is flagged by t itself.
    return (((t &+ 0x76 &* lanes) | t) & highBits, t)
}

/// A run of digits from `at`: its length, whether every digit is `0`, and the
/// byte after it (0 if the buffer ends first).
@inline(__always)
private func digitRun(_ bytes: UnsafeRawBufferPointer, _ at: Int, _ n: Int) -> (length: Int, zero: Bool, stop: UInt8) {
    var k = at
    var digitBits: UInt64 = 0   // the digits' values OR-ed together: 0 when all are `0`
    while true {
        let w = loadWord(bytes, k, n)
        let (stops, t) = digitStops(w)
        if stops != 0 {
            let count = leadingLanes(stops)
            digitBits |= t & lanesBefore(stops)
            return (k &+ count &- at, digitBits == 0, lane(w, count))
        }
        digitBits |= t
        k &+= 8
    }
}

/// The key whose bytes start at `at` (after the opening quote), if it is
/// plain ASCII without escapes: the offset of its closing quote and its
/// match, hashed a word at a time as it is read (see `KeyHash`). Nil leaves
/// it to Parser: escapes, UTF-8, control bytes, the end of the buffer.
@inline(__always)
func plainKey(_ bytes: UnsafeRawBufferPointer, _ at: Int, _ n: Int, _ table: KeyTable) -> (end: Int, match: KeyTable.Match)? {
    var k = at
    var hash: UInt64 = 0   // the full words so far
    var w = loadWord(bytes, k, n)
    var stops = stringStops(w)
    while _slowPath(stops == 0) {
        hash = KeyHash.chunk(hash, w)
        k &+= 8
        w = loadWord(bytes, k, n)
        stops = stringStops(w)
    }
    let count = leadingLanes(stops)
    guard _fastPath(lane(w, count) == UInt8(ascii: "\"")) else { return nil }
    k &+= count
    let tail = w & lanesBefore(stops)
    return (k, table.lookup(hash: KeyHash.finish(hash, tail), tail: tail, bytes, at, k))
}

/// The number whose digits start at `at` (after any `-`), if it has the
/// common shape `(0|[1-9][0-9]{0,17})(.[0-9]+)?` and the byte after it is in
/// the buffer and no letter: its end and whether every digit is `0`. Nil
/// leaves it to Parser: no digit, a leading 0 with more digits ("01"), an
/// integer part too long to be sure it fits in 64 bits, an exponent or
/// another letter ("1e5", "1x"), a number cut off by the end of the buffer.
@inline(__always)
func plainNumber(_ bytes: UnsafeRawBufferPointer, _ at: Int, _ n: Int) -> (end: Int, zero: Bool)? {
    // Most numbers fit in one word with the byte after them: "229.097," "0.1648}".
    let w = loadWord(bytes, at, n)
    let (stops, t) = digitStops(w)
    if _slowPath(stops == 0) { return longNumber(bytes, at, n) }
    let digits = leadingLanes(stops)
    // No digit, or a leading 0 (lane 0 of t is 0) followed by a digit.
    if digits == 0 || (t & 0xFF == 0 && digits > 1) { return nil }
    var stop = lane(w, digits)
    // High bit in every lane whose t is not 0 (no carries: digit and `.` lanes are small).
    let nonZero = (t &+ 0x7F &* lanes) & highBits
    let end: Int
    let zero: Bool
    if stop == UInt8(ascii: ".") {
        // Stops above the `.`: exact, as nothing carries out of digit lanes or
        // a `.` lane (0x1E + 0x76 < 0x100).
        let fractionStops = stops & (stops &- 1)   // the `.` cleared
        if _slowPath(fractionStops == 0) { return longNumber(bytes, at, n) }
        let fractionEnd = leadingLanes(fractionStops)
        if fractionEnd == digits &+ 1 { return nil }   // no fraction digit
        end = at &+ fractionEnd
        // The bits below the end's stop, without the `.` (a bit of `stops`).
        zero = nonZero & (fractionStops &- 1) & ~stops == 0
        stop = lane(w, fractionEnd)
    } else {
        end = at &+ digits
        zero = nonZero & (stops &- 1) & ~stops == 0   // (s - 1) & ~s: the bits below the lowest stop
    }
    guard end < n && (stop | 0x20) &- UInt8(ascii: "a") >= 26 else { return nil }
    return (end, zero)
}

/// `plainNumber` for digit runs that do not end in the first word.
@inline(never)
private func longNumber(_ bytes: UnsafeRawBufferPointer, _ at: Int, _ n: Int) -> (end: Int, zero: Bool)? {
    let integer = digitRun(bytes, at, n)
    guard integer.length > 0 && integer.length < 19 && (integer.length == 1 || bytes[at] != UInt8(ascii: "0")) else { return nil }
    var end = at + integer.length
    var zero = integer.zero
    var stop = integer.stop
    if stop == UInt8(ascii: ".") {
        let fraction = digitRun(bytes, end + 1, n)
        guard fraction.length > 0 else { return nil }
        end += 1 + fraction.length
        zero = zero && fraction.zero
        stop = fraction.stop
    }
    guard end < n && (stop | 0x20) &- UInt8(ascii: "a") >= 26 else { return nil }
    return (end, zero)
}
