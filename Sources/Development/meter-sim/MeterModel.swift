/// The Compere models the simulator speaks (docs/protocol.md): what each sends and answers.
enum MeterModel: String, CaseIterable, Sendable {
    case kpm33b, kpm37, kpm312

    /// `MQTT_RT_DATA` parts per reading (the KPM37 over Wi-Fi: 9).
    var realTimeParts: Int { self == .kpm37 ? KPM33BPayloads.splitParts : 1 }
    /// `MQTT_ENY_NOW` parts per reading (the KPM37: up to 11).
    var energyParts: Int { self == .kpm37 ? KPM37Payloads.energyParts : 1 }
    /// Yesterday's totals at 00:00 (`MQTT_DAY_DATA`): KPM37 and KPM312 only.
    var sendsDailyTotals: Bool { self != .kpm33b }
    /// Digital inputs and a relay output (`MQTT_TELEIND`, `MQTT_TELECTRL_`).
    var hasInputsAndRelay: Bool { self == .kpm37 }
    /// Measurement loops, each under its own id (base +0…+3): the KPM312 has 4.
    var loops: Int { self == .kpm312 ? 4 : 1 }
    /// The KPM37's extra tags (sequence components, temperatures, tariff 6, demand).
    var extendedTags: Bool { self == .kpm37 }

    /// The ids of a meter's loops: base +0…+(loops-1), the last digits counting.
    func loopIDs(_ base: String) -> [String] {
        // The trailing digits count; the rest stays (312A000000098 → …099, …100, …101).
        let digits = min(18, base.reversed().prefix { $0.isASCII && $0.isNumber }.count)
        guard loops > 1, digits > 0, let n = Int(base.suffix(digits)) else { return [base] }
        return (0..<loops).map { base.dropLast(digits) + String(String(n + $0).suffix(digits)).leftPadded(to: digits) }
    }
}

extension String {
    func leftPadded(to width: Int) -> String {
        count >= width ? self : String(repeating: "0", count: width - count) + self
    }
}
