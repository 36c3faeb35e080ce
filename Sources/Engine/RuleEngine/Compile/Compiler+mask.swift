/// `mask:` fields: one bit of a text tag of `@`-separated hexadecimal masks
/// (the KPM37's `MQTT_TELEIND` `"value":"00000003@00000001"`, inputs @ outputs).
extension Compiler {
    /// The most masks a value may hold and the bits of one (8 hexadecimal digits: 32).
    static let maskParts = 0...7
    static let maskBits = 0...63
}

extension Checker {
    /// Checks a `mask:` field: a text tag, a part and bit in range, and Home
    /// Assistant's binary_sensor semantics (its device classes, no unit,
    /// state class or precision). Nil when it cannot compile.
    func checkMask(_ m: MaskRules, _ f: FieldRules, isNumber: Bool) -> FieldMask? {
        var ok = true
        if isNumber {
            ok = false
            error(.invalidValue, "field '\(f.name.value)' has a 'mask' but tag '\(f.from.value)' is a number",
                  hint: "a mask reads a text tag of hexadecimal masks such as \"00000003@00000001\"", at: m.mark)
        }
        if !Compiler.maskParts.contains(m.part.value) {
            ok = false
            error(.invalidValue, "mask part \(m.part.value) of field '\(f.name.value)' is out of range",
                  hint: "parts count from 0 before the first '@' (0: inputs, 1: outputs in MQTT_TELEIND)", at: m.part.mark)
        }
        if !Compiler.maskBits.contains(m.bit.value) {
            ok = false
            error(.invalidValue, "mask bit \(m.bit.value) of field '\(f.name.value)' is out of range",
                  hint: "bits count from 0, the lowest (input 1)", at: m.bit.mark)
        }
        if let dc = f.deviceClass, !HomeAssistant.binarySensorClasses.contains(dc.value) {
            error(.homeAssistant, "unknown binary_sensor device_class '\(dc.value)' for mask field '\(f.name.value)'",
                  hint: Suggestion.hint(for: dc.value, in: HomeAssistant.binarySensorClasses)
                      ?? "a mask field is a binary_sensor; its classes: \(HomeAssistant.binarySensorClasses.joined(separator: ", "))",
                  at: dc.mark)
        }
        if let sc = f.stateClass {
            error(.homeAssistant, "a mask field is a binary_sensor and takes no state_class", hint: "remove state_class", at: sc.mark)
        }
        if let p = f.precision {
            error(.invalidValue, "a mask field is \"ON\" or \"OFF\" and takes no precision", hint: "remove precision", at: p.mark)
        }
        if let u = f.unit {
            error(.unitMismatch, "a mask field is \"ON\" or \"OFF\" and has no unit", hint: "remove unit", at: u.mark)
        }
        return ok ? FieldMask(part: m.part.value, bit: m.bit.value) : nil
    }
}
