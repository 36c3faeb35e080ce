import Foundation

/// The KPM33B's data messages, with the tags, order and decimals of the real
/// captures (`MQTT_RT_DATA.json`, `MQTT_ENY_NOW.json`).
enum KPM33BPayloads {
    static let realTimeTopic = "MQTT_RT_DATA"
    static let energyTopic = "MQTT_ENY_NOW"

    /// `MQTT_RT_DATA` tags between `id` and `time`, with their decimals.
    static let realTimeTags: [(tag: String, decimals: Int)] = [
        ("ia", 3), ("ib", 3), ("ic", 3), ("ua", 3), ("ub", 3), ("uc", 3),
        ("uab", 3), ("ubc", 3), ("uca", 3),
        ("pa", 4), ("pb", 4), ("pc", 4), ("zyggl", 4),
        ("qa", 4), ("qb", 4), ("qc", 4), ("zwggl", 4),
        ("sa", 4), ("sb", 4), ("sc", 4), ("zszgl", 4),
        ("pfa", 3), ("pfb", 3), ("pfc", 3), ("zglys", 3), ("f", 3),
        ("uxja", 3), ("uxjb", 3), ("uxjc", 3), ("ixja", 3), ("ixjb", 3), ("ixjc", 3),
        ("unb", 3), ("inb", 3),
        ("pdm", 4), ("qdm", 4), ("sdm", 4), ("iadm", 4), ("ibdm", 4), ("icdm", 4),
    ]

    /// `MQTT_ENY_NOW` tags between `id` and `time` (all with 3 decimals).
    static let energyTags = ["zygsz", "fygsz", "zwgsz", "fwgsz", "zszsz",
                             "zyjsz", "fyjsz", "zyfsz", "fyfsz", "zypsz", "fypsz",
                             "zyvsz", "fyvsz", "zydvsz", "fydvsz"]

    /// The KPM37 over Wi-Fi sends `MQTT_RT_DATA` in this many parts.
    static let splitParts = 9

    static func realTimeValues(_ e: ElectricalState) -> [String: Double] {
        let p = (0..<3).map(e.activePower), q = (0..<3).map(e.reactivePower), s = (0..<3).map(e.apparentPower)
        let totalP = p.reduce(0, +), totalS = s.reduce(0, +)
        let phi = e.powerFactor.map { acos(min(1, $0)) * 180 / .pi * (e.reactiveSign < 0 ? 1 : -1) }
        let uAngles = [0.0, 240 + e.angleJitter[1], 120 + e.angleJitter[2]]
        let iAngles = (0..<3).map { angle(uAngles[$0] - phi[$0]) }
        let demand = e.demand.isEmpty ? [totalP, q.reduce(0, +), totalS] + e.current : e.demand
        return [
            "ia": e.current[0], "ib": e.current[1], "ic": e.current[2],
            "ua": e.voltage[0], "ub": e.voltage[1], "uc": e.voltage[2],
            "uab": e.lineVoltage(0, 1), "ubc": e.lineVoltage(1, 2), "uca": e.lineVoltage(2, 0),
            "pa": p[0], "pb": p[1], "pc": p[2], "zyggl": totalP,
            "qa": q[0], "qb": q[1], "qc": q[2], "zwggl": q.reduce(0, +),
            "sa": s[0], "sb": s[1], "sc": s[2], "zszgl": totalS,
            "pfa": e.powerFactor[0], "pfb": e.powerFactor[1], "pfc": e.powerFactor[2],
            "zglys": totalS > 0 ? totalP / totalS : 1, "f": e.frequency,
            "uxja": uAngles[0], "uxjb": uAngles[1], "uxjc": uAngles[2],
            "ixja": iAngles[0], "ixjb": iAngles[1], "ixjc": iAngles[2],
            "unb": ElectricalState.unbalance(e.voltage), "inb": ElectricalState.unbalance(e.current),
            "pdm": demand[0], "qdm": demand[1], "sdm": demand[2],
            "iadm": demand[3], "ibdm": demand[4], "icdm": demand[5],
        ]
    }

    static func energyValues(_ e: ElectricalState) -> [String: Double] {
        [
            "zygsz": e.importActive, "fygsz": 0, "zwgsz": e.importReactive, "fwgsz": e.exportReactive,
            "zszsz": e.apparent,
            "zyjsz": e.tariff[0], "fyjsz": 0, "zyfsz": e.tariff[1], "fyfsz": 0,
            "zypsz": e.tariff[2], "fypsz": 0, "zyvsz": e.tariff[3], "fyvsz": 0,
            "zydvsz": 0, "fydvsz": 0,
        ]
    }

    /// One `MQTT_RT_DATA` payload, or `parts` payloads sharing id and time with
    /// `isend` "0" on all but the last. `zero`: every value 0 (the spurious
    /// messages real meters send).
    static func realTime(id: String, time: MeterTime, state: ElectricalState, zero: Bool, parts: Int = 1) -> [String] {
        let values = zero ? [:] : realTimeValues(state)
        let tags = realTimeTags
        let chunk = (tags.count + parts - 1) / parts
        var chunks: [ArraySlice<(tag: String, decimals: Int)>] = []
        var start = 0
        for part in 0..<parts {
            // Spread the remainder over the first parts: 40 tags in 9 parts = 5,5,5,5,4,4,4,4,4.
            let size = tags.count / parts + (part < tags.count % parts ? 1 : 0)
            chunks.append(tags[start..<min(tags.count, start + (parts == 1 ? chunk : size))])
            start += parts == 1 ? chunk : size
        }
        return chunks.enumerated().map { index, slice in
            var w = PayloadWriter()
            w.string("id", id)
            for (tag, decimals) in slice { w.number(tag, values[tag] ?? 0, decimals: decimals) }
            w.string("time", time.compact)
            w.string("isend", index == chunks.count - 1 ? "1" : "0")
            return w.result
        }
    }

    /// One `MQTT_ENY_NOW` payload.
    static func energy(id: String, time: MeterTime, state: ElectricalState, zero: Bool) -> String {
        let values = zero ? [:] : energyValues(state)
        var w = PayloadWriter()
        w.string("id", id)
        for tag in energyTags { w.number(tag, values[tag] ?? 0, decimals: 3) }
        w.string("time", time.compact)
        w.string("isend", "1")
        return w.result
    }

    /// Degrees in 0..<360.
    private static func angle(_ degrees: Double) -> Double {
        let r = degrees.truncatingRemainder(dividingBy: 360)
        return r < 0 ? r + 360 : r
    }
}
