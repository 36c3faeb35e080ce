/// The output payload of one route for one meter's enabled groups:
/// pre-encoded `{"name":` fragments with the value's slot between them.
final class OutputPlan {
    /// All fragments back to back; fragment `i` (`ends[i-1]..<ends[i]`) goes
    /// before value `i`, the last one closes the object. Raw buffers, owned
    /// here and immutable: rendering touches no reference counts.
    private let text: UnsafeMutableBufferPointer<UInt8>
    private let ends: UnsafeMutableBufferPointer<Int>
    private let slots: UnsafeMutableBufferPointer<Int>
    private let capacity: Int
    /// The fields, for the general path of routes with derived values (`OutputPlan+derived`).
    let fields: [CompiledField]

    init(fields: [CompiledField]) {
        self.fields = fields
        var text: [UInt8] = [UInt8(ascii: "{")]
        var ends: [Int] = []
        for (i, f) in fields.enumerated() {
            if i > 0 { text.append(UInt8(ascii: ",")) }
            JSONWriter.appendString(f.name, to: &text)
            text.append(UInt8(ascii: ":"))
            ends.append(text.count)
        }
        text.append(UInt8(ascii: "}"))
        ends.append(text.count)
        self.text = .allocate(capacity: text.count)
        _ = self.text.initialize(from: text)
        self.ends = .allocate(capacity: ends.count)
        _ = self.ends.initialize(from: ends)
        self.slots = .allocate(capacity: max(1, fields.count))
        _ = self.slots.initialize(from: fields.map(\.slot))
        self.capacity = text.count + fields.count * 4
    }

    deinit {
        text.deallocate()
        ends.deallocate()
        slots.deallocate()
    }

    /// The payload: fragments and the values' raw bytes (`null` for a missing value).
    func render(_ buffer: UnsafeRawBufferPointer, _ slices: UnsafeBufferPointer<FieldSlice>) -> [UInt8] {
        let count = ends.count - 1
        // The exact upper bound: the fragments, 4 bytes per field for "null"
        // (`capacity`), plus each written value's bytes. Not `buffer.count`:
        // fields that share a tag share a slot, so one value can be written
        // several times (`active_power` and `active_power_copy` from `zyggl`).
        var size = capacity
        for i in 0..<count {
            let s = slices[slots[i]]
            if s.kind != .missing { size += Int(s.end - s.start) }
        }
        return [UInt8](unsafeUninitializedCapacity: size) { out, written in
            let base = UnsafeMutableRawPointer(out.baseAddress!)
            let textBase = UnsafeRawPointer(text.baseAddress!)
            let source = buffer.baseAddress!
            var n = 0
            var fragmentStart = 0
            for i in 0..<count {
                let fragmentEnd = ends[i]
                (base + n).copyMemory(from: textBase + fragmentStart, byteCount: fragmentEnd - fragmentStart)
                n += fragmentEnd - fragmentStart
                fragmentStart = fragmentEnd
                let s = slices[slots[i]]
                if s.kind == .missing {
                    base.storeBytes(of: 0x6c6c_756e as UInt32, toByteOffset: n, as: UInt32.self)   // "null", little-endian
                    n += 4
                } else {
                    let length = Int(s.end - s.start)
                    (base + n).copyMemory(from: source + Int(s.start), byteCount: length)
                    n += length
                }
            }
            let last = ends[count] - fragmentStart
            (base + n).copyMemory(from: textBase + fragmentStart, byteCount: last)
            written = n + last
        }
    }
}
