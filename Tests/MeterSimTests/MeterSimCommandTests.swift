import Testing
@testable import meter_sim

@Suite struct MeterSimCommandTests {
    let oprid = "0123456789abcdef0123456789abcdef"
    let id = "33B1225950027"

    func decide(_ kind: MeterCommands.Kind, _ payload: String, failing: Bool = false) -> MeterCommands.Decision {
        MeterCommands.decide(kind: kind, payload: Array(payload.utf8), id: id, secondsInterval: 60,
                             minutesInterval: 15, failing: failing)
    }

    @Test func setIntervalAcknowledged() {
        #expect(decide(.setInterval, #"{"oprid":"\#(oprid)","Cmd":"0000","value":"30","types":"1"}"#)
            == .reply(topic: "MQTT_COMMOD_SET_REP", payload: #"{"id":"33B1225950027","oprid":"\#(oprid)","code":"01"}"#,
                      effect: .secondsInterval(30)))
        #expect(decide(.setInterval, #"{"oprid":"\#(oprid)","Cmd":"0001","value":"1440","types":"1"}"#)
            == .reply(topic: "MQTT_COMMOD_SET_REP", payload: #"{"id":"33B1225950027","oprid":"\#(oprid)","code":"01"}"#,
                      effect: .minutesInterval(1440)))
        // types 2: a float that is a whole number.
        if case .reply(_, _, let effect) = decide(.setInterval, #"{"oprid":"\#(oprid)","Cmd":"0001","value":"5.0","types":"2"}"#) {
            #expect(effect == .minutesInterval(5))
        } else {
            Issue.record("types 2 refused")
        }
    }

    @Test func disallowedValuesAnswered02() {
        let decision = decide(.setInterval, #"{"oprid":"\#(oprid)","Cmd":"0000","value":"45","types":"1"}"#)
        guard case .reply(let topic, let payload, let effect) = decision else { Issue.record("\(decision)"); return }
        #expect(topic == "MQTT_COMMOD_SET_REP")
        #expect(effect == nil)
        #expect(payload.hasPrefix(#"{"id":"33B1225950027","oprid":"\#(oprid)","code":"02","msg":"value 45 not allowed"#))
        for bad in [#""Cmd":"0001","value":"2","types":"1""#, #""Cmd":"0002","value":"30","types":"1""#,
                    #""Cmd":"0000","value":"30","types":"3""#, #""Cmd":"0000","value":"thirty","types":"1""#,
                    #""Cmd":"0000","value":"30.5","types":"2""#, #""Cmd":"0000","value":"30.0","types":"1""#,
                    #""Cmd":"0000","types":"1""#] {
            let d = decide(.setInterval, #"{"oprid":"\#(oprid)",\#(bad)}"#)
            guard case .reply(_, let p, nil) = d else { Issue.record("\(bad): \(d)"); continue }
            #expect(p.contains(#""code":"02""#), "\(bad)")
        }
    }

    @Test(arguments: [
        #"{"oprid":"0123456789abcdef0123456789abcde","Cmd":"0000","value":"30","types":"1"}"#,     // 31
        #"{"oprid":"0123456789abcdef0123456789abcdef0","Cmd":"0000","value":"30","types":"1"}"#,   // 33
        #"{"Cmd":"0000","value":"30","types":"1"}"#,                                               // none
        #"{"oprid":"0123456789abcdef0123456789abcdef","Cmd":"0000","value":30,"types":"1"}"#,      // number
        #"{"oprid":"0123456789abcdef0123456789abcdef","Cmd":"0000","value":null,"types":"1"}"#,
        #"{"oprid":"0123456789abcdef0123456789abcdef","Cmd":"0000","value":"30","types":"1""#,     // unclosed
        #"{"oprid":"0123456789abcdef0123456789abcdef","Cmd":"0000","Cmd":"0001","value":"30","types":"1"}"#,
        #"["oprid"]"#, #""#, #"{"oprid":"0123456789abcdef0123456789abcdef"} x"#,
    ])
    func unusableCommandsIgnored(payload: String) {
        guard case .ignore = decide(.setInterval, payload) else {
            Issue.record("answered: \(payload)")
            return
        }
    }

    @Test func setTimeAndRead() throws {
        let time = try #require(MeterTime(compact: "20260117211500"))
        #expect(decide(.setTime, #"{"oprid":"\#(oprid)","time":"20260117211500"}"#)
            == .reply(topic: "MQTT_METER_TIME_REP",
                      payload: #"{"id":"33B1225950027","oprid":"\#(oprid)","code":"01","msg":"time set"}"#,
                      effect: .clock(time)))
        guard case .reply(_, let bad, nil) = decide(.setTime, #"{"oprid":"\#(oprid)","time":"20261317211500"}"#) else {
            Issue.record("invalid time not answered")
            return
        }
        #expect(bad.contains(#""code":"02""#))
        #expect(decide(.readInterval, #"{"oprid":"\#(oprid)","Cmd":"0001","types":"1"}"#)
            == .reply(topic: "MQTT_COMMOD_READ_REP",
                      payload: #"{"id":"33B1225950027","oprid":"\#(oprid)","Cmd":"0001","value":"15","code":"01"}"#,
                      effect: nil))
    }

    @Test func failingMeterAnswers02() {
        let d = decide(.setInterval, #"{"oprid":"\#(oprid)","Cmd":"0000","value":"30","types":"1"}"#, failing: true)
        #expect(d == .reply(topic: "MQTT_COMMOD_SET_REP",
                            payload: #"{"id":"33B1225950027","oprid":"\#(oprid)","code":"02","msg":"simulated failure"}"#,
                            effect: nil))
    }
}
