/// The Compere models the simulator speaks (PROTOCOL.md): what each sends and answers.
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
        guard loops > 1, let n = Int(base.suffix(10)) else { return [base] }
        return (0..<loops).map { base.prefix(3) + String(String(n + $0).suffix(10)).leftPadded(to: 10) }
    }
}

extension String {
    func leftPadded(to width: Int) -> String {
        count >= width ? self : String(repeating: "0", count: width - count) + self
    }
}
