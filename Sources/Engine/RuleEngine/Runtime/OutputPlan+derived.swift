/// The general rendering of a route whose fields derive values (`mask:`):
/// not the pre-encoded fast path, since a derived value is not the meter's
/// bytes. Routes without derived fields never come here.
extension OutputPlan {
    func renderDerived(_ buffer: UnsafeRawBufferPointer, _ slices: UnsafeBufferPointer<FieldSlice>) -> [UInt8] {
        var w = JSONWriter(capacity: 64 + fields.count * 24)
        w.beginObject()
        for f in fields {
            w.key(f.name)
            let s = slices[f.slot]
            if let mask = f.mask {
                if s.kind == .string, let on = OutputPlan.bit(mask, UnsafeRawBufferPointer(rebasing: buffer[Int(s.start) + 1..<Int(s.end) - 1])) {
                    w.string(on ? "ON" : "OFF")
                } else {
                    w.null()
                }
            } else if s.kind == .missing {
                w.null()
            } else {
                w.raw(UnsafeRawBufferPointer(rebasing: buffer[Int(s.start)..<Int(s.end)]))
            }
        }
        w.endObject()
        return w.bytes
    }

    /// Bit `mask.bit` of the `mask.part`-th `@`-separated hexadecimal mask;
    /// nil when the part is missing, empty, too long or not hexadecimal.
    static func bit(_ mask: FieldMask, _ text: UnsafeRawBufferPointer) -> Bool? {
        var part = 0
        var value: UInt64 = 0
        var digits = 0
        var bad = false
        func result() -> Bool? {
            guard !bad, digits > 0, digits <= 16 else { return nil }
            return value >> UInt64(mask.bit) & 1 == 1
        }
        for b in text {
            if b == UInt8(ascii: "@") {
                if part == mask.part { return result() }
                part += 1
                continue
            }
            guard part == mask.part else { continue }
            let v: UInt8
            switch b {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): v = b - UInt8(ascii: "0")
            case UInt8(ascii: "a")...UInt8(ascii: "f"): v = b - UInt8(ascii: "a") + 10
            case UInt8(ascii: "A")...UInt8(ascii: "F"): v = b - UInt8(ascii: "A") + 10
            default: bad = true; v = 0
            }
            value = value << 4 | UInt64(v)
            digits += 1
        }
        return part == mask.part ? result() : nil
    }
}
