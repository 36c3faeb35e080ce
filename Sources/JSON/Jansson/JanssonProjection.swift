internal import CJansson

/// The benchmark baseline: what a C program does with jansson to pick fields out of a
/// payload — parse it all (`json_loadb`), build the output object (`json_object`,
/// `json_object_get`, `json_object_set`) and dump it (`json_dumpb`).
///
/// No Swift allocation per field: field names are passed to jansson from the stored
/// strings (`withCString` on a native string does not copy to the heap), and the dump
/// goes into a stack buffer; only the returned array is allocated. Reals print as jansson
/// does by default (17 significant digits).
///
/// Immutable after init, so one instance may be shared across threads.
public final class JanssonProjection: Sendable {
    /// `(outputName, sourceKey)`: `output[outputName] = payload[sourceKey] ?? null`.
    private let fields: [(output: String, source: String)]

    public init(fields: [(String, String)]) {
        self.fields = fields.map { (output: $0.0, source: $0.1) }
    }

    /// The projected object as compact JSON; nil when jansson rejects the payload or it
    /// is not an object.
    public func apply(_ payload: UnsafeRawBufferPointer) -> [UInt8]? {
        guard let start = payload.baseAddress,
              // Ours: decref'd below. No json_error_t: the baseline does not format errors.
              let input = json_loadb(start.assumingMemoryBound(to: CChar.self), payload.count, 0, nil)
        else { return nil }
        defer { json_decref(input) }
        guard input.pointee.type == JSON_OBJECT, let output = json_object() else { return nil }
        defer { json_decref(output) }  // ours; it holds its own references to the values
        for field in fields {
            // Borrowed from `input`, or the null singleton (not reference counted).
            let value = field.source.withCString { json_object_get(input, $0) } ?? json_null()
            // json_object_set takes a new reference to `value` for `output`.
            _ = field.output.withCString { json_object_set(output, $0, value) }
        }
        return Self.dump(output)
    }

    /// Dumps into a stack buffer, or a heap one when the output does not fit.
    private static func dump(_ json: UnsafeMutablePointer<json_t>) -> [UInt8]? {
        let flags = Int(JSON_COMPACT)
        let small = 4096
        let attempt: [UInt8]?? = withUnsafeTemporaryAllocation(of: CChar.self, capacity: small) { buffer in
            let size = json_dumpb(json, buffer.baseAddress, small, flags)
            guard size > 0 else { return .some(nil) }
            guard size <= small else { return nil }  // too big: retry on the heap
            return [UInt8](UnsafeRawBufferPointer(start: buffer.baseAddress, count: size))
        }
        if let attempt { return attempt }
        let size = json_dumpb(json, nil, 0, flags)
        return [UInt8](unsafeUninitializedCapacity: size) { buffer, count in
            count = json_dumpb(json, UnsafeMutableRawPointer(buffer.baseAddress)?.assumingMemoryBound(to: CChar.self), size, flags)
        }
    }
}
