/// The output payload of one route for one meter's enabled groups:
/// pre-encoded `{"name":` fragments with the value's slot between them.
final class OutputPlan {
    /// All fragments back to back; fragment `i` (`ends[i-1]..<ends[i]`) goes
    /// before value `i`, the last one closes the object. Raw buffers, owned
    /// here and immutable: rendering touches no reference counts.
    private let text: UnsafeMutableBufferPointer<UInt8>
    private let ends: UnsafeMutableBufferPointer<Int>
    private let slots: UnsafeMutableBufferPointer<Int>
    /// The bytes of all fragments.
    private let textCount: Int
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
        self.textCount = text.count
    }

    deinit {
        text.deallocate()
        ends.deallocate()
        slots.deallocate()
    }

    /// The payload: fragments and the values' raw bytes (`null` for a missing
    /// value), written over `out`, whose storage is reused when it has room
    /// and no other owner (`ProcessOutput`'s spare payload): no allocation.
    func render(_ buffer: UnsafeRawBufferPointer, _ slices: UnsafeBufferPointer<FieldSlice>, into out: inout [UInt8]) {
        let count = ends.count - 1
        // The exact size: the fragments, 4 bytes for each missing value's
        // "null", each written value's bytes. Not `buffer.count`: fields
        // that share a tag share a slot, so one value can be written several
        // times (`active_power` and `active_power_copy` from `zyggl`).
        var size = textCount
        for i in 0..<count {
            let s = slices[slots[i]]
            size += s.kind == .missing ? 4 : Int(s.end - s.start)
        }
        // One reading's payload is within a few bytes of the last one's.
        out.resize(to: size)
        out.withUnsafeMutableBytes { bytes in
            let base = bytes.baseAddress!
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
            (base + n).copyMemory(from: textBase + fragmentStart, byteCount: ends[count] - fragmentStart)
        }
    }
}
