internal import CSimdjsonBaseline
#if canImport(Glibc)
import Glibc
#endif

/// engine-bench's strongest baseline: simdjson's on-demand API doing the
/// engine's per-message work on the same bytes (validate the whole payload,
/// find the tags, keep each value's exact text, the all-zero check, write the
/// clean object); see `simdjson_projection.cpp`. The output goes into a
/// buffer owned by the projection: no allocation per message.
///
/// Holds a simdjson parser: one instance per thread.
public final class SimdjsonProjection {
    private let projection: OpaquePointer
    private var buffer: [UInt8]

    /// `(outputName, sourceKey)`, in output order; nil when the CPU lacks
    /// what the simdjson kernel was compiled for (AVX2 on x86-64).
    public init?(fields: [(String, String)]) {
        let outputs = fields.map { strdup($0.0)! }
        let sources = fields.map { strdup($0.1)! }
        defer { (outputs + sources).forEach { free($0) } }
        let made = outputs.map { UnsafePointer($0) }.withUnsafeBufferPointer { o in
            sources.map { UnsafePointer($0) }.withUnsafeBufferPointer { s in
                simdjson_projection_new(o.baseAddress, s.baseAddress, fields.count)
            }
        }
        guard let made else { return nil }
        projection = made
        buffer = [UInt8](repeating: 0, count: 4096)
    }

    deinit { simdjson_projection_free(projection) }

    /// The clean object's length (it is in `output`), or nil when the payload
    /// is rejected or a field is missing.
    public func apply(_ payload: UnsafeRawBufferPointer) -> Int? {
        var allZero: Int32 = 0
        let n = buffer.withUnsafeMutableBufferPointer { out in
            simdjson_projection_apply(projection, payload.baseAddress?.assumingMemoryBound(to: UInt8.self), payload.count,
                                      out.baseAddress, out.count, &allZero)
        }
        return n >= 0 ? n : nil
    }

    /// The simdjson kernel it runs (`haswell`: AVX2).
    public static var implementation: String { String(cString: simdjson_projection_implementation()) }

    /// The last clean object written by `apply`.
    public func output(count: Int) -> [UInt8] { Array(buffer.prefix(count)) }
}
