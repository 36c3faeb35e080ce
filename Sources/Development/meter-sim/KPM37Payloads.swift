import Foundation

/// What the KPM37 (and KPM312) send besides the KPM33B's messages: the extra
/// tags, `MQTT_ENY_NOW` in parts, `MQTT_DAY_DATA` and `MQTT_TELEIND`.
enum KPM37Payloads {
    static let dailyTopic = "MQTT_DAY_DATA"
    static let ioTopic = "MQTT_TELEIND"
    /// The KPM37 splits `MQTT_ENY_NOW` into up to this many parts.
    static let energyParts = 11

    /// Extra `MQTT_RT_DATA` tags of the KPM37, with their decimals.
    static let realTimeTags: [(tag: String, decimals: Int)] = [
        ("U0", 3), ("U+", 3), ("U-", 3), ("I0", 3), ("I+", 3), ("I-", 3), ("ig", 3),
        ("ta", 1), ("tb", 1), ("tc", 1), ("tn", 1),
    ]

    static func realTimeValues(_ e: ElectricalState) -> [String: Double] {
        let u = e.voltage.reduce(0, +) / 3, i = e.current.reduce(0, +) / 3
        let load = i / max(1, e.baseLoad.reduce(0, +) / 3)
        return [
            "U0": abs(e.voltage[0] - e.voltage[1]) / 6, "U+": u, "U-": abs(e.voltage[1] - e.voltage[2]) / 3,
            "I0": abs(e.current[0] - e.current[1]) / 6, "I+": i, "I-": abs(e.current[1] - e.current[2]) / 3,
            "ig": 0.012,
            "ta": 25 + 6 * load, "tb": 25.3 + 6 * load, "tc": 25.1 + 6 * load, "tn": 23 + 2 * load,
        ]
    }

    /// `MQTT_RT_DATA` of a KPM37: the KPM33B tags and the extra ones, in `parts` parts.
    static func realTime(id: String, time: MeterTime, state: ElectricalState, zero: Bool, parts: Int) -> [String] {
        var values = zero ? [:] : KPM33BPayloads.realTimeValues(state)
        if !zero { values.merge(realTimeValues(state)) { a, _ in a } }
        return split(id: id, time: time, tags: KPM33BPayloads.realTimeTags + realTimeTags, values: values, parts: parts)
    }

    /// `MQTT_ENY_NOW` of a KPM37: the KPM33B totals, tariff 6 and this month's maximum demand, in `parts` parts.
    static func energy(id: String, time: MeterTime, state: ElectricalState, zero: Bool, parts: Int, extended: Bool) -> [String] {
        var values = zero ? [:] : KPM33BPayloads.energyValues(state)
        var tags = KPM33BPayloads.energyTags.map { (tag: $0, decimals: 3) }
        if extended {
            tags += [("zy6sz", 3), ("fy6sz", 3), ("dmpmax", 4), ("dmpmaxtime", 0), ("dmsmax", 4), ("dmsmaxtime", 0)]
            if !zero {
                let demand = state.demand.isEmpty ? [state.totalActive, 0, state.totalApparent] : state.demand
                // The month's maximum, at the start of this month (UTC epoch seconds).
                let monthStart = Double(time.seconds - (time.seconds % 86400) + 946_684_800)
                values.merge(["zy6sz": 0, "fy6sz": 0, "dmpmax": demand[0] * 1.1, "dmpmaxtime": monthStart,
                              "dmsmax": demand[2] * 1.1, "dmsmaxtime": monthStart + 60]) { a, _ in a }
            }
        }
        return split(id: id, time: time, tags: tags, values: values, parts: parts)
    }

    /// `MQTT_DAY_DATA`: the totals at 00:00 of `time` (yesterday's energy).
    static func daily(id: String, time: MeterTime, state: ElectricalState) -> String {
        var w = PayloadWriter()
        w.string("id", id)
        w.number("zygdd", state.importActive, decimals: 3)
        w.number("fygdd", 0, decimals: 3)
        w.number("zwgdd", state.importReactive, decimals: 3)
        w.number("fwgdd", state.exportReactive, decimals: 3)
        w.string("time", time.compact)
        w.string("isend", "1")
        return w.result
    }

    /// `MQTT_TELEIND`: the input and output masks, `"DI@DO"` as 8 hexadecimal digits each.
    static func io(id: String, time: MeterTime, inputs: UInt32, outputs: UInt32) -> String {
        var w = PayloadWriter()
        w.string("id", id)
        w.string("time", time.compact)
        w.string("isend", "1")
        w.string("value", hex8(inputs) + "@" + hex8(outputs))
        return w.result
    }

    static func hex8(_ v: UInt32) -> String {
        String(String(v, radix: 16, uppercase: true).leftPadded(to: 8))
    }

    /// `tags` over `parts` messages sharing id and time, `isend` "1" on the last only.
    static func split(id: String, time: MeterTime, tags: [(tag: String, decimals: Int)], values: [String: Double], parts: Int) -> [String] {
        let parts = max(1, min(parts, tags.count))
        var out: [String] = []
        var start = 0
        for part in 0..<parts {
            let size = tags.count / parts + (part < tags.count % parts ? 1 : 0)
            var w = PayloadWriter()
            w.string("id", id)
            for (tag, decimals) in tags[start..<start + size] { w.number(tag, values[tag] ?? 0, decimals: decimals) }
            w.string("time", time.compact)
            w.string("isend", part == parts - 1 ? "1" : "0")
            out.append(w.result)
            start += size
        }
        return out
    }
}
