internal import CJansson

/// A document kept in jansson's own form, not converted to a `JSONValue` tree:
/// for picking a few members out of a large object and writing them out again
/// without a Swift value per member. Used by engine-bench's baseline, which
/// measures what a C program does with jansson.
///
/// Owns one reference to its root (released in `deinit`); noncopyable, so the
/// reference has exactly one owner and no allocation of its own.
public struct JSONDocument: ~Copyable {
    /// The root `json_t`, one reference ours (an `OpaquePointer` so no C type
    /// shows in the adapter's interface).
    private let root: OpaquePointer

    private var json: UnsafeMutablePointer<json_t> { UnsafeMutablePointer(root) }

    /// Parses `bytes` with jansson's defaults (`json_loadb`, no flags); nil when
    /// jansson rejects them or the top-level value is not an object.
    public init?(parsingObject bytes: UnsafeRawBufferPointer) {
        // No json_error_t: a caller of this form does not format errors.
        guard let start = bytes.baseAddress,
              let loaded = json_loadb(start.assumingMemoryBound(to: CChar.self), bytes.count, 0, nil)
        else { return nil }
        guard loaded.pointee.type == JSON_OBJECT else {
            json_decref(loaded)
            return nil
        }
        root = OpaquePointer(loaded)
    }

    /// An empty object (`json_object`).
    public init?() {
        guard let object = json_object() else { return nil }
        root = OpaquePointer(object)
    }

    deinit { json_decref(json) }

    /// `self[name] = source[key]`, or JSON `null` when `source` has no member
    /// `key`. The value is shared with `source`, not copied (jansson counts
    /// references). Names are passed without a copy to the heap.
    public func setMember(_ name: String, from source: borrowing JSONDocument, key: String) {
        // Borrowed from `source`, or the null singleton (not reference counted).
        let value = key.withCString { json_object_get(source.json, $0) } ?? json_null()
        // json_object_set takes a new reference to `value` for this object.
        _ = name.withCString { json_object_set(json, $0, value) }
    }

    /// Compact JSON as jansson writes it by default (reals with 17 significant
    /// digits); written into a stack buffer when it fits, so only the returned
    /// array is allocated. Nil when jansson fails to dump.
    public func compactBytes() -> [UInt8]? {
        let flags = Int(JSON_COMPACT)
        let small = 4096
        let json = self.json
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
