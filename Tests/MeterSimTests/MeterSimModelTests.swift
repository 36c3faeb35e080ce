import Testing
@testable import meter_sim

/// The KPM37 and KPM312 of the simulator: the relay command, the extra
/// messages and their parts (docs/protocol.md).
@Suite struct MeterSimModelTests {
    let oprid = "0123456789abcdef0123456789abcdef"
    let id = "37A1225950001"

    func relay(_ payload: String, failing: Bool = false) -> MeterCommands.Decision {
        MeterCommands.decide(kind: .relay, payload: Array(payload.utf8), id: id, secondsInterval: 60, minutesInterval: 5, failing: failing)
    }

    @Test func relaySwitchesAndAnswers01() {
        #expect(relay(#"{"do1":"1","oprid":"\#(oprid)"}"#)
            == .reply(topic: "MQTT_TELECTRL_REP", payload: #"{"id":"37A1225950001","dox":"do1","oprid":"\#(oprid)","code":"01"}"#,
                      effect: .relay(on: true)))
        #expect(relay(#"{"oprid":"\#(oprid)","do1":"0"}"#)
            == .reply(topic: "MQTT_TELECTRL_REP", payload: #"{"id":"37A1225950001","dox":"do1","oprid":"\#(oprid)","code":"01"}"#,
                      effect: .relay(on: false)))
    }

    @Test func badRelayCommandsAnswer02OrNothing() {
        for bad in [#"{"do1":"2","oprid":"\#(oprid)"}"#, #"{"do1":"on","oprid":"\#(oprid)"}"#, #"{"oprid":"\#(oprid)"}"#,
                    #"{"do1":"1","do2":"1","oprid":"\#(oprid)"}"#] {
            guard case .reply(let topic, let p, nil) = relay(bad) else { Issue.record("\(bad)"); continue }
            #expect(topic == "MQTT_TELECTRL_REP")
            #expect(p.contains(#""code":"02""#), "\(bad)")
        }
        guard case .reply(_, let p, nil) = relay(#"{"do1":"1","oprid":"\#(oprid)"}"#, failing: true) else { Issue.record("failing"); return }
        #expect(p.contains(#""code":"02""#))
        // Unusable: silently ignored, as the meter does.
        for ignored in [#"{"do1":"1","oprid":"short"}"#, #"{"do1":1,"oprid":"\#(oprid)"}"#, #"{"do1":"1","do1":"0","oprid":"\#(oprid)"}"#, "nope"] {
            guard case .ignore = relay(ignored) else { Issue.record("\(ignored) not ignored"); continue }
        }
    }

    @Test func kpm37ReadingsComeInParts() {
        var rng = SplitMix64(seed: 1)
        let state = ElectricalState(rng: &rng)
        let time = MeterTime(compact: "20260112170000")!
        let rt = KPM37Payloads.realTime(id: id, time: time, state: state, zero: false, parts: 9)
        #expect(rt.count == 9)
        #expect(rt.dropLast().allSatisfy { $0.hasSuffix(#""time":"20260112170000","isend":"0"}"#) })
        #expect(rt.last!.hasSuffix(#""isend":"1"}"#))
        #expect(rt.joined().contains(#""U+":"#) && rt.joined().contains(#""tn":"#))
        let eny = KPM37Payloads.energy(id: id, time: time, state: state, zero: false, parts: 11, extended: true)
        #expect(eny.count == 11)
        #expect(eny.joined().contains(#""zy6sz":"#) && eny.joined().contains(#""dmpmaxtime":"#))
        #expect(KPM37Payloads.io(id: id, time: time, inputs: 3, outputs: 1).contains(#""value":"00000003@00000001""#))
        #expect(KPM37Payloads.daily(id: id, time: time, state: state).hasPrefix(#"{"id":"37A1225950001","zygdd":"#))
    }

    @Test func kpm312HasFourLoops() {
        #expect(MeterModel.kpm312.loopIDs("312A000000098") == ["312A000000098", "312A000000099", "312A000000100", "312A000000101"])
        #expect(MeterModel.kpm37.loopIDs(id) == [id])
    }
}
