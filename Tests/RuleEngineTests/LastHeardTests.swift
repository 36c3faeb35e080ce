import Testing
@testable import RuleEngine
@testable import RuleTesting

/// When each meter was last heard lives in the engine's per-meter state (no
/// table of its own keyed by id), is reported once per meter in
/// `ProcessOutput.heard`, and carries over to the engine a reload starts.
@Suite struct LastHeardTests {
    let program: Program
    let t0 = Replay.instant(Replay.defaultClock)!

    init() throws {
        program = try Compiler.build(rules: Fixtures.pack, config: nil)
    }

    func reading(_ id: String, _ second: Int, _ power: String = "1.5") -> [UInt8] {
        Array(#"{"id":"\#(id)","time":"2026011216391\#(second)","isend":"1","zyggl":\#(power)}"#.utf8)
    }

    func process(_ engine: Engine, _ payload: [UInt8], at now: Instant, into out: inout ProcessOutput) {
        out.removeAll()
        payload.withUnsafeBytes { engine.process(topic: "MQTT_RT_DATA", payload: $0, now: now, into: &out) }
    }

    @Test func aMeterIsHeardWhenItsCleanReadingLeaves() {
        let engine = Engine(program: program, origin: Origin(name: "test", version: "0"))
        var out = ProcessOutput()
        let later = Instant(epochMillis: t0.epochMillis + 10_000)
        process(engine, reading("33B1225950027", 0, "0"), at: t0, into: &out)
        #expect(out.messages.isEmpty && out.heard.isEmpty, "an all-zero reading is junk: not heard")
        #expect(engine.lastHeard("33B1225950027") == nil && engine.metersHeard == 0)
        process(engine, reading("33B1225950027", 1), at: t0, into: &out)
        #expect(out.heard == ["33B1225950027"])
        process(engine, reading("33B1225950028", 1), at: t0, into: &out)
        #expect(out.heard == ["33B1225950028"])
        process(engine, reading("33B1225950027", 2), at: later, into: &out)
        #expect(out.heard.isEmpty, "heard once since the start")
        #expect(engine.lastHeard("33B1225950027") == later)
        #expect(engine.lastHeard("33B1225950028") == t0)
        #expect(engine.lastHeard("33B1225950029") == nil)
        #expect(engine.metersHeard == 2)
        var all: [String: Instant] = [:]
        engine.forEachHeard { all[$0] = $1 }
        #expect(all == ["33B1225950027": later, "33B1225950028": t0])
    }

    @Test func aReloadedEngineKeepsWhenItsMetersWereHeard() {
        let old = PackRouter(programs: ProgramSet(single: program), origin: Origin(name: "test", version: "0"))
        var out = ProcessOutput()
        for (i, id) in ["33B1225950027", "33B1225950028"].enumerated() {
            out.removeAll()
            reading(id, i).withUnsafeBytes { old.process(topic: "MQTT_RT_DATA", payload: $0, now: t0, into: &out) }
        }
        let heard = old.heard
        #expect(heard.map(\.id) == ["33B1225950027", "33B1225950028"])
        let new = PackRouter(programs: ProgramSet(single: program), origin: Origin(name: "test", version: "0"))
        new.restoreHeard(heard)
        #expect(new.metersHeard == 2 && new.lastHeard("33B1225950028") == t0)
        let later = Instant(epochMillis: t0.epochMillis + 60_000)
        out.removeAll()
        reading("33B1225950027", 5).withUnsafeBytes { new.process(topic: "MQTT_RT_DATA", payload: $0, now: later, into: &out) }
        #expect(out.messages.contains { $0.kind == .data })
        #expect(out.heard.isEmpty, "heard before the reload: not a first reading")
        #expect(new.metersHeard == 2, "counted once, restored or seen")
        #expect(new.lastHeard("33B1225950027") == later && new.lastHeard("33B1225950028") == t0)
    }
}
