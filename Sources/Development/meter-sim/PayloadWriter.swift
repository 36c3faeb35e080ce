/// Writes meter payloads byte for byte as a KPM33B does: keys in the meter's
/// order, numbers as fixed-point with the meter's decimals, no spaces.
struct PayloadWriter {
    private var text = "{"
    private var first = true

    private mutating func key(_ name: String) {
        if !first { text += "," }
        first = false
        text += "\"\(name)\":"
    }

    /// A string member. Meter strings are ids, times and codes: nothing to escape
    /// but quotes and backslashes, which are escaped anyway.
    mutating func string(_ name: String, _ value: String) {
        key(name)
        text += "\"" + value.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"") + "\""
    }

    /// A number with exactly `decimals` digits after the point (`6.6905`, `0.000`).
    mutating func number(_ name: String, _ value: Double, decimals: Int) {
        key(name)
        text += Self.fixed(value, decimals: decimals)
    }

    var result: String { text + "}" }

    /// Fixed-point text without locale or binary noise; never `-0.000`.
    static func fixed(_ value: Double, decimals: Int) -> String {
        var scale: Int64 = 1
        for _ in 0..<decimals { scale *= 10 }
        let scaled = Int64((value * Double(scale)).rounded())
        let negative = scaled < 0
        let magnitude = negative ? -scaled : scaled
        let sign = negative ? "-" : ""
        guard decimals > 0 else { return sign + String(magnitude) }
        let fraction = String(magnitude % scale)
        return sign + String(magnitude / scale) + "." + String(repeating: "0", count: decimals - fraction.count) + fraction
    }
}
