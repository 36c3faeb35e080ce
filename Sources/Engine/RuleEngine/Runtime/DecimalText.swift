/// The value of a JSON number's text, read without making a `String`, for
/// the plain decimals meters send (`163.486`, `-0.5`, `42`).
enum DecimalText {
    /// The correctly rounded value of `bytes`, or nil for what this fast
    /// path leaves to the full conversion: an exponent, more than 15
    /// significant digits, more than 22 decimals. Up to 15 digits the digits
    /// and the power of ten are both exact doubles, so one division rounds
    /// once, as a full conversion would. `bytes` is a number the scanner
    /// validated.
    static func value(_ bytes: UnsafeRawBufferPointer) -> Double? {
        let n = bytes.count
        var i = 0
        let negative = n > 0 && bytes[0] == UInt8(ascii: "-")
        if negative { i = 1 }
        let first = i
        var mantissa: UInt64 = 0
        // Significant digits: a digit counts once the mantissa is not zero
        // (leading zeros do not). Past 15 the text goes to the full
        // conversion, long before the mantissa could wrap.
        var digits = 0
        while i < n {
            let d = bytes[i] &- UInt8(ascii: "0")
            if d >= 10 { break }
            mantissa = mantissa &* 10 &+ UInt64(d)
            if mantissa != 0 { digits &+= 1 }
            i &+= 1
        }
        var decimals = 0
        if i < n && bytes[i] == UInt8(ascii: ".") {
            i &+= 1
            let fractionStart = i
            while i < n {
                let d = bytes[i] &- UInt8(ascii: "0")
                if d >= 10 { break }
                mantissa = mantissa &* 10 &+ UInt64(d)
                if mantissa != 0 { digits &+= 1 }
                i &+= 1
            }
            decimals = i &- fractionStart
        }
        guard i == n, i > first, digits <= 15, decimals <= 22 else { return nil }
        let magnitude = Double(mantissa) / powerOfTen(decimals)
        return negative ? -magnitude : magnitude
    }

    /// 10^k for 0...22, the powers a `Double` holds exactly: literals, so a
    /// reading reads a constant table, not a lazily built array.
    private static func powerOfTen(_ k: Int) -> Double {
        switch k {
        case 0: 1e0
        case 1: 1e1
        case 2: 1e2
        case 3: 1e3
        case 4: 1e4
        case 5: 1e5
        case 6: 1e6
        case 7: 1e7
        case 8: 1e8
        case 9: 1e9
        case 10: 1e10
        case 11: 1e11
        case 12: 1e12
        case 13: 1e13
        case 14: 1e14
        case 15: 1e15
        case 16: 1e16
        case 17: 1e17
        case 18: 1e18
        case 19: 1e19
        case 20: 1e20
        case 21: 1e21
        default: 1e22
        }
    }
}
