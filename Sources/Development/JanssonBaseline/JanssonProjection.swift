import JSON

/// The benchmark baseline: what a C program does with jansson to pick fields out of a
/// payload — parse it all (`json_loadb`), build the output object (`json_object`,
/// `json_object_get`, `json_object_set`) and dump it (`json_dumpb`), through the JSON
/// adapter's `JSONDocument`, which keeps jansson's tree as it is.
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
        guard let input = JSONDocument(parsingObject: payload), let output = JSONDocument() else { return nil }
        for field in fields {
            output.setMember(field.output, from: input, key: field.source)
        }
        return output.compactBytes()
    }
}
