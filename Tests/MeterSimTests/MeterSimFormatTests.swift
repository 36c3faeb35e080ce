import Testing
@testable import meter_sim

/// Real KPM33B messages (rules/kpm33b/samples), the reference for the format.
enum RealCapture {
    static let realTime = #"{"id":"33B1225950027","ia":9.735,"ib":9.658,"ic":9.655,"ua":229.097,"ub":231.567,"uc":232.529,"uab":398.949,"ubc":401.920,"uca":399.784,"pa":2.2229,"pb":2.2293,"pc":2.2382,"zyggl":6.6905,"qa":-0.1648,"qb":-0.1649,"qc":-0.1632,"zwggl":-0.4930,"sa":2.2304,"sb":2.2366,"sc":2.2452,"zszgl":6.7122,"pfa":0.996,"pfb":0.996,"pfc":0.996,"zglys":0.996,"f":49.959,"uxja":0.000,"uxjb":239.774,"uxjc":119.874,"ixja":355.691,"ixjb":235.434,"ixjc":115.615,"unb":1.485,"inb":0.823,"pdm":6.6898,"qdm":-0.4971,"sdm":6.7118,"iadm":9.6838,"ibdm":9.6380,"icdm":9.6717,"time":"20260112163900","isend":"1"}"#
    static let energy = #"{"id":"33B1225950027","zygsz":163.486,"fygsz":0.000,"zwgsz":0.000,"fwgsz":11.085,"zszsz":164.331,"zyjsz":8.668,"fyjsz":0.000,"zyfsz":25.344,"fyfsz":0.000,"zypsz":60.573,"fypsz":0.000,"zyvsz":68.898,"fyvsz":0.000,"zydvsz":0.000,"fydvsz":0.000,"time":"20260117211500","isend":"1"}"#
}

/// Key order and, per key, "string" or the number of decimals: the format
/// without the values. Meter payloads are flat objects whose strings hold no
/// commas or colons, so splitting the text is enough (and keeps the numbers'
/// text, which a JSON parser would turn into doubles).
func shape(_ payload: String) -> [String] {
    guard payload.hasPrefix("{"), payload.hasSuffix("}") else { return ["not an object"] }
    return payload.dropFirst().dropLast().split(separator: ",").map { member in
        let parts = member.split(separator: ":", maxSplits: 1)
        guard parts.count == 2, parts[0].hasPrefix("\""), parts[0].hasSuffix("\"") else { return "malformed" }
        let key = parts[0].dropFirst().dropLast()
        let value = parts[1]
        if value.hasPrefix("\"") { return "\(key):string" }
        guard Double(value) != nil else { return "\(key):other" }
        return "\(key):" + String(value.split(separator: ".").dropFirst().first?.count ?? 0)
    }
}

@Suite struct MeterSimFormatTests {
    func state(seed: UInt64 = 1) -> ElectricalState {
        var rng = SplitMix64(seed: seed)
        var state = ElectricalState(rng: &rng)
        state.drift(daySecond: 40_000, rng: &rng)
        return state
    }

    @Test func realTimeHasTheMetersShape() throws {
        let time = try #require(MeterTime(compact: "20260112163900"))
        for seed in 1...20 as ClosedRange<UInt64> {
            let payloads = KPM33BPayloads.realTime(id: "33B1225950027", time: time, state: state(seed: seed), zero: false)
            #expect(payloads.count == 1)
            #expect(shape(payloads[0]) == shape(RealCapture.realTime))
            #expect(!payloads[0].contains(" "))
        }
    }

    @Test func energyHasTheMetersShape() throws {
        let time = try #require(MeterTime(compact: "20260117211500"))
        let payload = KPM33BPayloads.energy(id: "33B1225950027", time: time, state: state(), zero: false)
        #expect(shape(payload) == shape(RealCapture.energy))
    }

    @Test func zeroMessagesLookLikeTheSpuriousOnes() throws {
        let time = try #require(MeterTime(compact: "20260112170000"))
        let payload = KPM33BPayloads.energy(id: "33B1225950029", time: time, state: state(), zero: true)
        // Byte for byte a spurious message of the real capture (rules/kpm33b/tests/capture-eny-now.in).
        #expect(payload == #"{"id":"33B1225950029","zygsz":0.000,"fygsz":0.000,"zwgsz":0.000,"fwgsz":0.000,"zszsz":0.000,"zyjsz":0.000,"fyjsz":0.000,"zyfsz":0.000,"fyfsz":0.000,"zypsz":0.000,"fypsz":0.000,"zyvsz":0.000,"fyvsz":0.000,"zydvsz":0.000,"fydvsz":0.000,"time":"20260112170000","isend":"1"}"#)
    }

    @Test func splitReadingHasNinePartsSharingIdAndTime() throws {
        let time = try #require(MeterTime(compact: "20260112163900"))
        let parts = KPM33BPayloads.realTime(id: "33B1225950027", time: time, state: state(), zero: false, parts: 9)
        #expect(parts.count == 9)
        let shapes = parts.map(shape)
        #expect(shapes.allSatisfy { $0.first == "id:string" && $0.suffix(2) == ["time:string", "isend:string"] })
        #expect(parts.dropLast().allSatisfy { $0.hasSuffix(#""time":"20260112163900","isend":"0"}"#) })
        #expect(parts.last!.hasSuffix(#""time":"20260112163900","isend":"1"}"#))
        // Together the parts carry every tag once, in the meter's order.
        let tags = shapes.flatMap { $0.dropFirst().dropLast(2) }
        #expect(tags == Array(shape(RealCapture.realTime).dropFirst().dropLast(2)))
    }

    @Test func countersOnlyRise() {
        var rng = SplitMix64(seed: 3)
        var state = ElectricalState(rng: &rng)
        var previous = KPM33BPayloads.energyValues(state)
        for step in 0..<500 {
            state.drift(daySecond: Int64(step * 173 % 86400), rng: &rng)
            state.integrate(hours: 0.25, daySecond: Int64(step * 173 % 86400))
            let now = KPM33BPayloads.energyValues(state)
            for (tag, value) in now { #expect(value >= previous[tag]!, "\(tag) fell") }
            previous = now
        }
        let tariffs = state.tariff.reduce(0, +)
        #expect(abs(tariffs - state.importActive) < 0.01)
    }

    @Test func readingsAreRealistic() {
        for seed in 1...50 as ClosedRange<UInt64> {
            var rng = SplitMix64(seed: seed)
            var state = ElectricalState(rng: &rng)
            for step in 0..<200 { state.drift(daySecond: Int64(step * 300), rng: &rng) }
            let v = KPM33BPayloads.realTimeValues(state)
            for phase in ["ua", "ub", "uc"] { #expect((215...245).contains(v[phase]!)) }
            #expect((0.9...1).contains(v["zglys"]!))
            #expect((49.8...50.2).contains(v["f"]!))
            #expect(abs(v["zyggl"]! - (v["pa"]! + v["pb"]! + v["pc"]!)) < 1e-9)
            #expect(v["zyggl"]! <= v["zszgl"]! + 1e-9)
        }
    }

    @Test(arguments: [
        (6.69049, 4, "6.6905"), (0, 3, "0.000"), (-0.00001, 3, "0.000"), (-0.49304, 4, "-0.4930"),
        (401.92, 3, "401.920"), (0.0005, 3, "0.001"), (12, 0, "12"),
    ])
    func fixedPoint(value: Double, decimals: Int, expected: String) {
        #expect(PayloadWriter.fixed(value, decimals: decimals) == expected)
    }

    @Test func meterTime() throws {
        for text in ["20000101000000", "20260112163900", "20050101000000", "19991231235959", "20240229120000", "99991231235959"] {
            #expect(MeterTime(compact: text)?.compact == text)
        }
        for bad in ["2026011216390", "202601121639000", "20260230120000", "20261301000000", "20260101240000",
                    "2026O112163900", "20250229000000", "+0260112163900"] {
            #expect(MeterTime(compact: bad) == nil, "\(bad)")
        }
        let t = try #require(MeterTime(compact: "20260117211734"))
        #expect(t.floor(to: 900).compact == "20260117211500")
        #expect(t.floor(to: 86400).compact == "20260117000000")
        #expect(t.secondOfDay == 21 * 3600 + 17 * 60 + 34)
    }
}
