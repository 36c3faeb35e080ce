/// The cursor of one scan. A value type kept in registers; `i` only moves forward.
struct Parser {
    let bytes: UnsafeRawBufferPointer
    let n: Int
    var i = 0

    init(bytes: UnsafeRawBufferPointer) {
        self.bytes = bytes
        self.n = bytes.count
    }

    @inline(__always) func peek() -> UInt8 { i < n ? bytes[i] : 0 }

    @inline(__always) func error(_ kind: ScanError.Kind) -> ScanError {
        ScanError(kind: i >= n ? .truncated : kind, offset: i)
    }

    @inline(__always) mutating func skipSpace() {
        while i < n {
            let c = bytes[i]
            if c == 0x20 || c == 0x0A || c == 0x0D || c == 0x09 { i += 1 } else { return }
        }
    }

    /// Scans a value whose first byte is at `i`; returns its kind and zero-ness.
    @inline(__always) mutating func scanValue() throws(ScanError) -> (ValueKind, Bool) {
        guard i < n else { throw error(.truncated) }
        let c = bytes[i]
        if c == UInt8(ascii: "-") || (c >= UInt8(ascii: "0") && c <= UInt8(ascii: "9")) {
            return (.number, try skipNumber())
        }
        if c == UInt8(ascii: "\"") {
            _ = try skipString()
            return (.string, false)
        }
        let kind: ValueKind
        switch c {
        case UInt8(ascii: "{"): kind = .object
        case UInt8(ascii: "["): kind = .array
        case UInt8(ascii: "t"): kind = .trueValue
        case UInt8(ascii: "f"): kind = .falseValue
        case UInt8(ascii: "n"): kind = .null
        default: throw error(.invalidToken)
        }
        try skipValue(depth: 1)
        return (kind, false)
    }

    mutating func skipValue(depth: Int) throws(ScanError) {
        guard depth <= PayloadScanner.maxDepth else { throw error(.tooDeep) }
        guard i < n else { throw error(.truncated) }
        switch bytes[i] {
        case UInt8(ascii: "\""): _ = try skipString()
        case UInt8(ascii: "{"):
            i += 1
            skipSpace()
            if peek() == UInt8(ascii: "}") { i += 1; return }
            while true {
                skipSpace()
                guard peek() == UInt8(ascii: "\"") else { throw error(.invalidToken) }
                _ = try skipString()
                skipSpace()
                guard peek() == UInt8(ascii: ":") else { throw error(.invalidToken) }
                i += 1
                skipSpace()
                try skipValue(depth: depth + 1)
                if try closes(UInt8(ascii: "}")) { return }
            }
        case UInt8(ascii: "["):
            i += 1
            skipSpace()
            if peek() == UInt8(ascii: "]") { i += 1; return }
            while true {
                skipSpace()
                try skipValue(depth: depth + 1)
                if try closes(UInt8(ascii: "]")) { return }
            }
        case UInt8(ascii: "t"): try literal("true")
        case UInt8(ascii: "f"): try literal("false")
        case UInt8(ascii: "n"): try literal("null")
        case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"): _ = try skipNumber()
        default: throw error(bytes[i] >= 0x80 ? .invalidUTF8 : .invalidToken)
        }
    }

    /// After a member of a container: `,` (false: another member follows) or
    /// `close` (true: the container ends here); anything else is an error.
    mutating func closes(_ close: UInt8) throws(ScanError) -> Bool {
        skipSpace()
        guard i < n else { throw error(.truncated) }
        let c = bytes[i]
        if c == UInt8(ascii: ",") { i += 1; return false }
        if c == close { i += 1; return true }
        throw error(.invalidToken)
    }

    mutating func literal(_ word: StaticString) throws(ScanError) {
        let length = word.utf8CodeUnitCount
        for k in 0..<length {
            guard i + k < n else { i += k; throw error(.truncated) }
            if bytes[i + k] != word.utf8Start[k] { i += k; throw error(.invalidToken) }
        }
        i += length
    }

    /// Skips a string starting at the opening quote; returns whether it had escapes.
    @inline(__always) mutating func skipString() throws(ScanError) -> Bool {
        i += 1
        var escaped = false
        while i < n {
            let c = bytes[i]
            if c == UInt8(ascii: "\"") { i += 1; return escaped }
            if c == UInt8(ascii: "\\") {
                escaped = true
                try skipEscape()
            } else if c < 0x20 {
                throw error(.invalidString)
            } else if c < 0x80 {
                i += 1
            } else {
                try skipUTF8()
            }
        }
        throw error(.truncated)
    }

    mutating func skipEscape() throws(ScanError) {
        guard i + 1 < n else { i = n; throw error(.truncated) }
        switch bytes[i + 1] {
        case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"), UInt8(ascii: "b"),
             UInt8(ascii: "f"), UInt8(ascii: "n"), UInt8(ascii: "r"), UInt8(ascii: "t"):
            i += 2
        case UInt8(ascii: "u"):
            i += 2
            let high = try hex4()
            if high == 0 { throw ScanError(kind: .invalidString, offset: i - 6) }
            if high >= 0xDC00 && high < 0xE000 { throw ScanError(kind: .invalidString, offset: i - 6) }
            if high >= 0xD800 && high < 0xDC00 {
                guard i + 1 < n else { i = n; throw error(.truncated) }
                guard bytes[i] == UInt8(ascii: "\\"), bytes[i + 1] == UInt8(ascii: "u") else {
                    throw error(.invalidString)
                }
                i += 2
                let low = try hex4()
                guard low >= 0xDC00 && low < 0xE000 else { throw ScanError(kind: .invalidString, offset: i - 6) }
            }
        default:
            i += 1
            throw error(.invalidString)
        }
    }

    mutating func hex4() throws(ScanError) -> UInt32 {
        var v: UInt32 = 0
        for _ in 0..<4 {
            guard i < n else { throw error(.truncated) }
            let h = hexValue(bytes[i])
            guard h < 16 else { throw error(.invalidString) }
            v = v << 4 | UInt32(h)
            i += 1
        }
        return v
    }

    /// Validates one UTF-8 sequence starting at `i` (a byte >= 0x80), per RFC 3629.
    mutating func skipUTF8() throws(ScanError) {
        let c = bytes[i]
        let need: Int
        var lo: UInt8 = 0x80, hi: UInt8 = 0xBF
        switch c {
        case 0xC2...0xDF: need = 1
        case 0xE0: need = 2; lo = 0xA0
        case 0xE1...0xEC, 0xEE...0xEF: need = 2
        case 0xED: need = 2; hi = 0x9F
        case 0xF0: need = 3; lo = 0x90
        case 0xF1...0xF3: need = 3
        case 0xF4: need = 3; hi = 0x8F
        default: throw error(.invalidUTF8)
        }
        guard i + need < n else {
            // A cut-off sequence at the end: report what it is, invalid or truncated.
            var k = 1
            while i + k < n {
                let b = bytes[i + k]
                if k == 1 ? (b < lo || b > hi) : (b < 0x80 || b > 0xBF) { throw error(.invalidUTF8) }
                k += 1
            }
            i = n
            throw error(.truncated)
        }
        let b1 = bytes[i + 1]
        guard b1 >= lo && b1 <= hi else { throw error(.invalidUTF8) }
        if need >= 2 { guard bytes[i + 2] & 0xC0 == 0x80 else { throw error(.invalidUTF8) } }
        if need == 3 { guard bytes[i + 3] & 0xC0 == 0x80 else { throw error(.invalidUTF8) } }
        i += need + 1
    }

    /// Skips a number; returns whether every digit is zero.
    @inline(__always) mutating func skipNumber() throws(ScanError) -> Bool {
        let start = i
        var zero = true
        var isReal = false
        if bytes[i] == UInt8(ascii: "-") { i += 1 }
        guard i < n else { throw error(.truncated) }
        var c = bytes[i]
        if c == UInt8(ascii: "0") {
            i += 1
        } else if c >= UInt8(ascii: "1") && c <= UInt8(ascii: "9") {
            zero = false
            i += 1
            while i < n, bytes[i] &- UInt8(ascii: "0") < 10 { i += 1 }
        } else {
            throw error(.invalidNumber)
        }
        let intDigits = i - start - (bytes[start] == UInt8(ascii: "-") ? 1 : 0)
        if i < n, bytes[i] == UInt8(ascii: ".") {
            isReal = true
            i += 1
            guard i < n else { throw error(.truncated) }
            guard bytes[i] &- UInt8(ascii: "0") < 10 else { throw error(.invalidNumber) }
            while i < n {
                c = bytes[i]
                guard c &- UInt8(ascii: "0") < 10 else { break }
                if c != UInt8(ascii: "0") { zero = false }
                i += 1
            }
        }
        var hasExponent = false
        if i < n, bytes[i] | 0x20 == UInt8(ascii: "e") {
            isReal = true
            hasExponent = true
            i += 1
            guard i < n else { throw error(.truncated) }
            if bytes[i] == UInt8(ascii: "+") || bytes[i] == UInt8(ascii: "-") { i += 1 }
            guard i < n else { throw error(.truncated) }
            guard bytes[i] &- UInt8(ascii: "0") < 10 else { throw error(.invalidNumber) }
            while i < n, bytes[i] &- UInt8(ascii: "0") < 10 { i += 1 }
        }
        // A number glued to a letter ("1x") is an invalid token, as in jansson.
        if i < n {
            let next = bytes[i] | 0x20
            if next >= UInt8(ascii: "a") && next <= UInt8(ascii: "z") { throw error(.invalidNumber) }
        }
        if !isReal {
            if intDigits >= 19 && !fitsInt64(start, i) { throw ScanError(kind: .numberOutOfRange, offset: start) }
        } else if (hasExponent || intDigits > 300) && !zero {
            if !isFiniteReal(start, i) { throw ScanError(kind: .numberOutOfRange, offset: start) }
        }
        return zero
    }

    func fitsInt64(_ start: Int, _ end: Int) -> Bool {
        var k = start
        let negative = bytes[k] == UInt8(ascii: "-")
        if negative { k += 1 }
        var magnitude: UInt64 = 0
        while k < end {
            let (m, o1) = magnitude.multipliedReportingOverflow(by: 10)
            let (s, o2) = m.addingReportingOverflow(UInt64(bytes[k] - UInt8(ascii: "0")))
            if o1 || o2 { return false }
            magnitude = s
            k += 1
        }
        return negative ? magnitude <= UInt64(Int64.max) + 1 : magnitude <= UInt64(Int64.max)
    }

    func isFiniteReal(_ start: Int, _ end: Int) -> Bool {
        let text = String(decoding: UnsafeRawBufferPointer(rebasing: bytes[start..<end]), as: UTF8.self)
        guard let value = Double(text) else { return false }
        return value.isFinite
    }
}
