/// Appends compact JSON to a byte buffer. Values already in JSON form (a
/// meter's number or string, byte for byte) go in with `raw`. The one
/// writer of what the engine publishes and of every Home Assistant config
/// (the services' own entities too), so that key order, escaping and
/// numbers are the same everywhere.
public struct JSONWriter {
    public private(set) var bytes: [UInt8] = []
    private var needsComma = false

    public init(capacity: Int = 256) { bytes.reserveCapacity(capacity) }

    public mutating func beginObject() { separator(); bytes.append(UInt8(ascii: "{")); needsComma = false }
    public mutating func endObject() { bytes.append(UInt8(ascii: "}")); needsComma = true }
    public mutating func beginArray() { separator(); bytes.append(UInt8(ascii: "[")); needsComma = false }
    public mutating func endArray() { bytes.append(UInt8(ascii: "]")); needsComma = true }

    public mutating func key(_ k: String) {
        separator()
        JSONWriter.appendString(k, to: &bytes)
        bytes.append(UInt8(ascii: ":"))
        needsComma = false
    }

    public mutating func string(_ s: String) { separator(); JSONWriter.appendString(s, to: &bytes); needsComma = true }
    public mutating func int(_ v: Int) { separator(); bytes.append(contentsOf: String(v).utf8); needsComma = true }
    public mutating func bool(_ v: Bool) { separator(); bytes.append(contentsOf: (v ? "true" : "false").utf8); needsComma = true }
    public mutating func null() { separator(); bytes.append(contentsOf: "null".utf8); needsComma = true }
    public mutating func raw(_ r: some Sequence<UInt8>) { separator(); bytes.append(contentsOf: r); needsComma = true }

    public mutating func field(_ k: String, _ s: String) { key(k); string(s) }
    public mutating func field(_ k: String, _ v: Int) { key(k); int(v) }

    private mutating func separator() {
        if needsComma { bytes.append(UInt8(ascii: ",")) }
    }

    static func appendString(_ s: String, to out: inout [UInt8]) {
        out.append(UInt8(ascii: "\""))
        for b in s.utf8 {
            switch b {
            case UInt8(ascii: "\""): out.append(contentsOf: [92, 34])
            case UInt8(ascii: "\\"): out.append(contentsOf: [92, 92])
            case 0x0A: out.append(contentsOf: [92, UInt8(ascii: "n")])
            case 0x0D: out.append(contentsOf: [92, UInt8(ascii: "r")])
            case 0x09: out.append(contentsOf: [92, UInt8(ascii: "t")])
            case 0..<0x20:
                let hex = Array("0123456789abcdef".utf8)
                out.append(contentsOf: [92, UInt8(ascii: "u"), 48, 48, hex[Int(b >> 4)], hex[Int(b & 15)]])
            default: out.append(b)
            }
        }
        out.append(UInt8(ascii: "\""))
    }

    public static func quoted(_ s: String) -> [UInt8] {
        var out: [UInt8] = []
        appendString(s, to: &out)
        return out
    }
}
