/// A small, fast, always-anchored pattern for device ids and names.
///
/// Supports the part of regular expressions an id pattern needs: literal
/// characters (`\` escapes one), `.`, bracket classes (`[0-9A-Z_]`, `[^/]`)
/// and the quantifiers `?`, `*`, `+`, `{n}`, `{n,}`, `{n,m}`. A leading `^`
/// and trailing `$` are accepted and implied anyway: the whole value must
/// match. No groups or alternation: an id pattern never needs them, and the
/// restriction lets the compiler prove which bytes can reach a topic.
public struct IDPattern: Sendable, CustomStringConvertible {
    struct Atom: Sendable {
        var set: [Bool]   // 256 entries: byte allowed (compile time only)
        var min: Int
        var max: Int      // Int.max for unbounded
    }
    let atoms: [Atom]
    /// The same sets as bitmaps, 4 words per atom, and the bounds: what matching reads.
    private let bits: [UInt64]
    private let mins: [Int]
    private let maxs: [Int]
    public let source: String
    public var description: String { source }

    public struct SyntaxError: Error, Sendable {
        public var message: String
        public var offset: Int   // in characters of the source
    }

    /// The largest count a `{n,m}` may name.
    public static let maxRepeat = 10_000

    public init(_ source: String) throws(SyntaxError) {
        self.source = source
        var chars = Array(source.utf8)
        var offsetShift = 0
        if chars.first == UInt8(ascii: "^") { chars.removeFirst(); offsetShift = 1 }
        if chars.last == UInt8(ascii: "$"), !(chars.count >= 2 && chars[chars.count - 2] == UInt8(ascii: "\\")) {
            chars.removeLast()
        }
        var atoms: [Atom] = []
        var i = 0
        func fail(_ message: String) -> SyntaxError { SyntaxError(message: message, offset: i + offsetShift) }
        while i < chars.count {
            var set = [Bool](repeating: false, count: 256)
            let c = chars[i]
            switch c {
            case UInt8(ascii: "."):
                for b in 1..<256 { set[b] = true }
                i += 1
            case UInt8(ascii: "\\"):
                guard i + 1 < chars.count else { throw fail("dangling '\\'") }
                set[Int(chars[i + 1])] = true
                i += 2
            case UInt8(ascii: "["):
                i += 1
                var negate = false
                if i < chars.count && chars[i] == UInt8(ascii: "^") { negate = true; i += 1 }
                var first = true
                while true {
                    guard i < chars.count else { throw fail("unclosed '['") }
                    var lo = chars[i]
                    if lo == UInt8(ascii: "]") && !first { i += 1; break }
                    first = false
                    if lo == UInt8(ascii: "\\") {
                        guard i + 1 < chars.count else { throw fail("dangling '\\'") }
                        i += 1
                        lo = chars[i]
                    }
                    i += 1
                    var hi = lo
                    if i + 1 < chars.count && chars[i] == UInt8(ascii: "-") && chars[i + 1] != UInt8(ascii: "]") {
                        hi = chars[i + 1]
                        i += 2
                        guard hi >= lo else { throw fail("range out of order") }
                    }
                    for b in lo...hi { set[Int(b)] = true }
                }
                if negate { for b in 1..<256 { set[b].toggle() } ; set[0] = false }
            case UInt8(ascii: "("), UInt8(ascii: ")"), UInt8(ascii: "|"):
                throw fail("groups and alternation are not supported in id patterns")
            case UInt8(ascii: "*"), UInt8(ascii: "+"), UInt8(ascii: "?"), UInt8(ascii: "{"):
                throw fail("quantifier without anything to repeat")
            default:
                set[Int(c)] = true
                i += 1
            }
            var atom = Atom(set: set, min: 1, max: 1)
            if i < chars.count {
                switch chars[i] {
                case UInt8(ascii: "?"): atom.min = 0; i += 1
                case UInt8(ascii: "*"): atom.min = 0; atom.max = .max; i += 1
                case UInt8(ascii: "+"): atom.max = .max; i += 1
                case UInt8(ascii: "{"):
                    i += 1
                    // Bounded: an id is short, and a count of 20 digits would overflow (and trap).
                    func number() throws(SyntaxError) -> Int? {
                        var v: Int?
                        while i < chars.count, chars[i] >= UInt8(ascii: "0"), chars[i] <= UInt8(ascii: "9") {
                            v = (v ?? 0) * 10 + Int(chars[i] - UInt8(ascii: "0"))
                            guard v! <= IDPattern.maxRepeat else { throw fail("a repeat count over \(IDPattern.maxRepeat)") }
                            i += 1
                        }
                        return v
                    }
                    guard let lo = try number() else { throw fail("expected a number after '{'") }
                    atom.min = lo
                    atom.max = lo
                    if i < chars.count && chars[i] == UInt8(ascii: ",") {
                        i += 1
                        atom.max = try number() ?? .max
                    }
                    guard i < chars.count, chars[i] == UInt8(ascii: "}") else { throw fail("expected '}'") }
                    guard atom.max >= atom.min else { throw fail("repeat range out of order") }
                    i += 1
                default: break
                }
            }
            atoms.append(atom)
        }
        self.atoms = atoms
        var bits: [UInt64] = []
        for atom in atoms {
            var words = [UInt64](repeating: 0, count: 4)
            for b in 0..<256 where atom.set[b] { words[b >> 6] |= 1 << UInt64(b & 63) }
            bits += words
        }
        self.bits = bits
        self.mins = atoms.map(\.min)
        self.maxs = atoms.map(\.max)
    }

    /// Whether the whole of `bytes` matches.
    public func matches(_ bytes: UnsafeRawBufferPointer) -> Bool {
        bits.withUnsafeBufferPointer { bits in match(atom: 0, bytes, 0, bits) }
    }

    public func matches(_ string: String) -> Bool {
        var s = string
        return s.withUTF8 { matches(UnsafeRawBufferPointer($0)) }
    }

    @inline(__always)
    private func allowed(_ bits: UnsafeBufferPointer<UInt64>, _ atom: Int, _ byte: UInt8) -> Bool {
        bits[atom &* 4 &+ Int(byte >> 6)] & (1 << UInt64(byte & 63)) != 0
    }

    private func match(atom a: Int, _ bytes: UnsafeRawBufferPointer, _ at: Int, _ bits: UnsafeBufferPointer<UInt64>) -> Bool {
        if a == mins.count { return at == bytes.count }
        let min = mins[a], max = maxs[a]
        var count = 0
        while count < min {
            guard at + count < bytes.count, allowed(bits, a, bytes[at + count]) else { return false }
            count += 1
        }
        if min == max { return match(atom: a + 1, bytes, at + count, bits) }
        // Greedy with backtracking; ids are short, patterns tiny.
        var maxCount = count
        while maxCount < max, at + maxCount < bytes.count, allowed(bits, a, bytes[at + maxCount]) { maxCount += 1 }
        var k = maxCount
        while k >= count {
            if match(atom: a + 1, bytes, at + k, bits) { return true }
            k -= 1
        }
        return false
    }

    /// Bytes the pattern may let through that must never reach an MQTT topic level.
    public var topicUnsafeBytes: [UInt8] {
        let unsafe: [UInt8] = [UInt8(ascii: "/"), UInt8(ascii: "+"), UInt8(ascii: "#"), 0]
        return unsafe.filter { b in atoms.contains { $0.set[Int(b)] } }
    }

    /// Whether the pattern accepts the empty string.
    public var acceptsEmpty: Bool { atoms.allSatisfy { $0.min == 0 } }
}
