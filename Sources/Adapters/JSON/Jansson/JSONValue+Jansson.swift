internal import CJansson

// Parsing and serialization through jansson. Reference rule for this file: a function
// named `make…` returns a new reference the caller owns; `init(borrowing:)` only reads.

extension JSONValue {
    /// Parses with jansson (`json_loadb`). With `allowAnyTopLevel` a bare scalar is a
    /// document (`JSON_DECODE_ANY`); otherwise only an object or an array is.
    ///
    /// jansson's rules apply: invalid UTF-8, `\u0000` in a string, trailing garbage and
    /// integers beyond 64 bits are errors; a repeated key keeps its first place and its
    /// last value.
    /// With `rejectDuplicateKeys` an object naming a key twice is an error
    /// (`JSON_REJECT_DUPLICATES`); by default the last value wins.
    public static func parse(_ bytes: some Collection<UInt8>, allowAnyTopLevel: Bool = false,
                             rejectDuplicateKeys: Bool = false) throws(JSONError) -> JSONValue {
        let result = bytes.withContiguousStorageIfAvailable { buffer in
            parse(UnsafeRawBufferPointer(buffer), allowAnyTopLevel: allowAnyTopLevel, rejectDuplicateKeys: rejectDuplicateKeys)
        } ?? Array(bytes).withUnsafeBytes { parse($0, allowAnyTopLevel: allowAnyTopLevel, rejectDuplicateKeys: rejectDuplicateKeys) }
        return try result.get()
    }

    public static func parse(_ text: String, allowAnyTopLevel: Bool = false) throws(JSONError) -> JSONValue {
        var text = text
        return try text.withUTF8 { parse(UnsafeRawBufferPointer($0), allowAnyTopLevel: allowAnyTopLevel, rejectDuplicateKeys: false) }.get()
    }

    private static func parse(_ buffer: UnsafeRawBufferPointer, allowAnyTopLevel: Bool, rejectDuplicateKeys: Bool) -> Result<JSONValue, JSONError> {
        var error = json_error_t()
        let flags = (allowAnyTopLevel ? Int(JSON_DECODE_ANY) : 0) | (rejectDuplicateKeys ? Int(JSON_REJECT_DUPLICATES) : 0)
        // json_loadb rejects a NULL buffer even when empty, so an empty input reads "".
        let root = if let start = buffer.baseAddress {
            json_loadb(start.assumingMemoryBound(to: CChar.self), buffer.count, flags, &error)
        } else {
            json_loads("", flags, &error)
        }
        guard let root else { return .failure(JSONError(error)) }
        defer { json_decref(root) }  // the only reference to the loaded tree is ours
        return .success(JSONValue(borrowing: root))
    }

    /// Compact UTF-8 JSON through jansson, members in order. Reals print with the fewest
    /// digits that read back as the same Double (`0.1`, not `0.10000000000000001`); a
    /// NaN or an infinity, which JSON cannot carry, prints as `null`.
    public func serialized() -> [UInt8] {
        let root = makeJansson()
        defer { json_decref(root) }
        let flags = Int(JSON_COMPACT | JSON_ENCODE_ANY) | realPrecisionFlag(JSONValue.realPrecision(for: self))
        var output: [UInt8] = []
        // The callback gets `output` through the user pointer; it only appends.
        let status = withUnsafeMutablePointer(to: &output) { output in
            json_dump_callback(root, { chunk, size, data in
                guard let chunk, let data else { return 0 }
                let output = data.assumingMemoryBound(to: [UInt8].self)
                output.pointee.append(contentsOf: UnsafeRawBufferPointer(start: chunk, count: size))
                return 0
            }, output, flags)
        }
        // A tree built from Swift values is always dumpable (valid UTF-8, no cycles).
        precondition(status == 0, "jansson failed to dump a JSONValue")
        return output
    }

    public var serializedString: String {
        String(decoding: serialized(), as: UTF8.self)
    }

    /// Reads a jansson value; the caller keeps its reference.
    init(borrowing json: UnsafeMutablePointer<json_t>) {
        switch json.pointee.type {
        case JSON_OBJECT:
            var members: [JSONObject.Element] = []
            members.reserveCapacity(json_object_size(json))
            var iterator = json_object_iter(json)
            while let current = iterator {
                // Key and value are borrowed from the object.
                let key = String(
                    decoding: UnsafeRawBufferPointer(start: json_object_iter_key(current), count: json_object_iter_key_len(current)),
                    as: UTF8.self)
                members.append((key, JSONValue(borrowing: json_object_iter_value(current))))
                iterator = json_object_iter_next(json, current)
            }
            self = .object(JSONObject(uniqueMembers: members))
        case JSON_ARRAY:
            // json_array_get borrows; the index is in range, so it is never NULL.
            self = .array((0..<json_array_size(json)).map { JSONValue(borrowing: json_array_get(json, $0)) })
        case JSON_STRING:
            self = .string(String(
                decoding: UnsafeRawBufferPointer(start: json_string_value(json), count: json_string_length(json)),
                as: UTF8.self))
        case JSON_INTEGER:
            self = .integer(Int64(json_integer_value(json)))
        case JSON_REAL:
            self = .real(json_real_value(json))
        case JSON_TRUE:
            self = .bool(true)
        case JSON_FALSE:
            self = .bool(false)
        default:
            self = .null
        }
    }

    /// A new jansson value; the caller owns the reference. Children are handed over with
    /// the `_new` setters, which take the child's reference.
    func makeJansson() -> UnsafeMutablePointer<json_t> {
        let json: UnsafeMutablePointer<json_t>? = switch self {
        case .null: json_null()
        case .bool(let value): value ? json_true() : json_false()
        case .integer(let value): json_integer(json_int_t(value))
        case .real(let value): value.isFinite ? json_real(value) : json_null()  // json_real refuses NaN, ±inf
        case .string(let value): value.withCString { json_stringn_nocheck($0, value.utf8.count) }
        case .array(let items):
            json_array().map { array in
                for item in items { json_array_append_new(array, item.makeJansson()) }
                return array
            }
        case .object(let object):
            json_object().map { result in
                for (key, value) in object {
                    _ = key.withCString { json_object_setn_new_nocheck(result, $0, key.utf8.count, value.makeJansson()) }
                }
                return result
            }
        }
        guard let json else { fatalError("jansson: out of memory") }
        return json
    }

    /// The fewest significant digits with which jansson prints every real of `value` so
    /// that it reads back as the same Double; 17 always does.
    static func realPrecision(for value: JSONValue) -> Int {
        var reals: [Double] = []
        value.collectReals(into: &reals)
        // Swift's description is the shortest form that round-trips; printf's %.Ng with
        // that many digits almost always reproduces it, and is checked below.
        var precision = reals.map(shortestSignificantDigits).max() ?? 17
        while precision < 17 && !reals.allSatisfy({ roundTrips($0, precision: precision) }) {
            precision += 1
        }
        return precision
    }

    private func collectReals(into reals: inout [Double]) {
        switch self {
        case .real(let value) where value.isFinite: reals.append(value)
        case .array(let items): for item in items { item.collectReals(into: &reals) }
        case .object(let object): for (_, value) in object { value.collectReals(into: &reals) }
        default: break
        }
    }
}

/// jansson's `JSON_REAL_PRECISION(n)`, a function-like macro Swift cannot import.
private func realPrecisionFlag(_ digits: Int) -> Int {
    (digits & 0x1F) << 11
}

/// Significant digits of the shortest round-trip form, counting every digit before the
/// point so that `%g` does not switch 100.0 to `1e+02`.
private func shortestSignificantDigits(_ value: Double) -> Int {
    let text = value.magnitude.description
    let mantissa = text.prefix { $0 != "e" }
    let parts = mantissa.split(separator: ".", omittingEmptySubsequences: false)
    let integer = parts[0]
    let fraction = parts.count > 1 ? parts[1] : ""
    let trimmedFraction = fraction.reversed().drop { $0 == "0" }.count
    let digits = if integer == "0" {
        // 0.00123 → 3: leading zeros of the fraction are not significant.
        fraction.drop { $0 == "0" }.reversed().drop { $0 == "0" }.count
    } else {
        integer.count + trimmedFraction
    }
    return min(max(digits, 1), 17)
}

/// Whether jansson, printing `value` with `precision` digits, gives text that parses back
/// to `value`.
private func roundTrips(_ value: Double, precision: Int) -> Bool {
    guard let json = json_real(value) else { return false }
    defer { json_decref(json) }
    let flags = Int(JSON_ENCODE_ANY) | realPrecisionFlag(precision)
    return withUnsafeTemporaryAllocation(of: CChar.self, capacity: 64) { buffer in
        let size = json_dumpb(json, buffer.baseAddress, buffer.count, flags)
        guard size > 0, size <= buffer.count else { return false }
        let text = String(decoding: UnsafeRawBufferPointer(start: buffer.baseAddress, count: size), as: UTF8.self)
        return Double(text) == value
    }
}
