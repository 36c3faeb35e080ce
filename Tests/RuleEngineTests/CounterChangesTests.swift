import Testing
@testable import RuleEngine
@testable import RuleTesting

/// The engine reports the guarded counters that moved (and those forgotten)
/// since the service last asked: the service keeps no copy of every counter
/// to find them.
@Suite struct CounterChangesTests {
    let engine: Engine
    let now = Replay.instant(Replay.defaultClock)!

    init() throws {
        engine = Engine(program: try Compiler.build(rules: Fixtures.pack, config: nil), origin: Origin(name: "test", version: "0"))
    }

    func energy(_ id: String, _ value: String, minute: Int) {
        let payload = Array(#"{"id":"\#(id)","zygsz":\#(value),"fwgsz":11.085,"time":"202601121\#(600 + minute)00","isend":"1"}"#.utf8)
        var out = ProcessOutput()
        payload.withUnsafeBytes { engine.process(topic: "MQTT_ENY_NOW", payload: $0, now: now, into: &out) }
    }

    @Test func onlyTheMetersWhoseCountersMovedAreReported() {
        #expect(engine.takeCounterChanges().isEmpty)
        energy("33B1225950027", "100.0", minute: 0)
        energy("33B1225950028", "200.0", minute: 0)
        let first = engine.takeCounterChanges()
        #expect(first.changed.map(\.device) == ["33B1225950027", "33B1225950028"])
        #expect(first.changed.map(\.value) == [100.0, 200.0])
        #expect(first.forgotten.isEmpty)
        #expect(engine.takeCounterChanges().isEmpty, "taken: reported once")
        // The same value again moves nothing; a new one, once however often it moved.
        energy("33B1225950027", "100.0", minute: 1)
        energy("33B1225950028", "200.5", minute: 1)
        energy("33B1225950028", "200.7", minute: 2)
        let second = engine.takeCounterChanges()
        #expect(second.changed.map(\.device) == ["33B1225950028"])
        #expect(second.changed.map(\.value) == [200.7])
        // A glitch is not a change.
        energy("33B1225950027", "0.0", minute: 3)
        #expect(engine.takeCounterChanges().isEmpty)
    }

    @Test func forgottenCountersAreReportedAsGone() {
        energy("33B1225950027", "100.0", minute: 0)
        _ = engine.takeCounterChanges()
        #expect(engine.forgetCounters(device: "33B1225950027") == ["active_energy"])
        #expect(engine.forgetCounters(device: "33B1225950029").isEmpty)
        // Restored and not seen yet: forgotten too.
        engine.restore([CounterSnapshot(device: "33B1225950030", field: "active_energy", value: 5, time: 0)])
        #expect(engine.forgetCounters(device: "33B1225950030", field: "active_energy") == ["active_energy"])
        let changes = engine.takeCounterChanges()
        #expect(changes.forgotten == [.init(device: "33B1225950027", field: "active_energy"),
                                      .init(device: "33B1225950030", field: "active_energy")])
        #expect(changes.changed.isEmpty)
        // Its next reading starts the counter afresh, and is reported.
        energy("33B1225950027", "3.0", minute: 1)
        #expect(engine.takeCounterChanges() == CounterChanges(changed: [
            CounterSnapshot(device: "33B1225950027", field: "active_energy", value: 3.0, time: engine.counters[0].time),
        ]))
    }
}
