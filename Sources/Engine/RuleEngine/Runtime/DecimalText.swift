/// The value of a JSON number's text, read without making a `String`, for
/// the plain decimals meters send (`163.486`, `-0.5`, `42`).
enum DecimalText {
    /// Powers of ten that a `Double` holds exactly.
    private static let exactPowersOfTen: [Double] = (0...22).map { k in (0..<k).reduce(1.0) { r, _ in r * 10 } }

    /// The correctly rounded value of `bytes`, or nil for what this fast
    /// path leaves to the full conversion: an exponent, more than 15
    /// significant digits, more than 22 decimals. Up to 15 digits the digits
    /// and the power of ten are both exact doubles, so one division rounds
    /// once, as a full conversion would. `bytes` is a number the scanner
    /// validated.
    static func value(_ bytes: UnsafeRawBufferPointer) -> Double? {
        var i = 0
        let negative = bytes.first == UInt8(ascii: "-")
        if negative { i = 1 }
        var mantissa: UInt64 = 0
        var digits = 0
        var decimals = 0
        var seenPoint = false
        while i < bytes.count {
            let b = bytes[i]
            if b == UInt8(ascii: ".") && !seenPoint {
                seenPoint = true
            } else if b &- UInt8(ascii: "0") < 10 {
                if mantissa != 0 || b != UInt8(ascii: "0") { digits += 1 }
                mantissa = mantissa &* 10 &+ UInt64(b &- UInt8(ascii: "0"))
                if seenPoint { decimals += 1 }
            } else {
                return nil
            }
            i += 1
        }
        guard digits <= 15, decimals <= 22, i > (negative ? 1 : 0) else { return nil }
        let magnitude = Double(mantissa) / exactPowersOfTen[decimals]
        return negative ? -magnitude : magnitude
    }
}
