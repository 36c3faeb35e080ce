/// The kind of a JSON value as the scanner saw it.
public enum ValueKind: UInt8, Sendable {
    case missing = 0, string, number, trueValue, falseValue, null, object, array

    var name: String {
        switch self {
        case .missing: "missing"
        case .string: "string"
        case .number: "number"
        case .trueValue, .falseValue: "boolean"
        case .null: "null"
        case .object: "object"
        case .array: "array"
        }
    }
}

/// Where one wanted field's value sits in the payload bytes.
///
/// `start..<end` is the raw value exactly as written (a string includes its
/// quotes and escapes), so it can leave byte for byte.
public struct FieldSlice: Sendable, Equatable {
    public var start: Int32 = 0
    public var end: Int32 = 0
    public var kind: ValueKind = .missing
    /// True for a number whose every digit is `0` (`0`, `-0.000`, `0e5`).
    public var isZero: Bool = false
}

/// Why a payload was rejected. The offset is the byte where the problem was found.
public struct ScanError: Error, Sendable, Equatable, CustomStringConvertible {
    public enum Kind: String, Sendable {
        case empty = "empty payload"
        case notObject = "not a JSON object"
        case truncated = "truncated JSON"
        case trailingGarbage = "trailing garbage after the JSON object"
        case invalidUTF8 = "invalid UTF-8"
        case invalidToken = "invalid JSON token"
        case invalidString = "invalid string"
        case invalidNumber = "invalid number"
        case numberOutOfRange = "number out of range"
        case tooDeep = "nesting too deep"
    }
    public var kind: Kind
    public var offset: Int
    public var description: String { "\(kind.rawValue) at byte \(offset)" }
}

/// The result of one scan.
public struct ScanResult: Sendable {
    /// True when every value whose key is not ignored is a zero number.
    public var allZero: Bool
}
