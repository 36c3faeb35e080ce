/// The hash of a key: one function of its bytes wherever it is computed, by
/// `KeyTable` at build time, by `of` for escaped or non-ASCII keys, and by the
/// scanner word by word as it reads a plain key.
///
/// The key is cut into 8-byte little-endian words; each full word is mixed in,
/// then the last 0...7 bytes (`tail`, zero-padded). A key under 8 bytes thus
/// costs one multiply: `tail * k`. The length is left out: keys that differ
/// only in trailing zero bytes are rare enough, and a match compares lengths.
enum KeyHash {
    /// An odd constant with well-spread bits (2^64 / golden ratio).
    static let k: UInt64 = 0x9E37_79B9_7F4A_7C15

    /// Mixes one full 8-byte word into `h`.
    @inline(__always)
    static func chunk(_ h: UInt64, _ word: UInt64) -> UInt64 {
        let m = (h ^ word) &* k
        return m ^ (m &>> 32)   // a product's high bits see every input bit; fold them into the low ones
    }

    /// The hash from the full words' `h` and the tail word.
    @inline(__always)
    static func finish(_ h: UInt64, _ tail: UInt64) -> UInt64 {
        (h ^ tail) &* k
    }

    /// Hash and tail word of the bytes `start..<end`.
    static func of(_ bytes: UnsafeRawBufferPointer, _ start: Int, _ end: Int) -> (hash: UInt64, tail: UInt64) {
        var h: UInt64 = 0
        var k = start
        while end - k >= 8 {
            h = chunk(h, loadWord(bytes, k, end))
            k += 8
        }
        let tail = loadWord(bytes, k, end)
        return (finish(h, tail), tail)
    }
}
