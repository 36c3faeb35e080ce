import Testing
@testable import RuleEngine

/// One `ProcessOutput` across calls (as the proxy keeps it): the next clean
/// payload is written into the storage of the last one, and a payload the
/// caller still holds is never written over.
@Suite struct ProcessOutputReuseTests {
    let engine: Engine
    let now = Replay.instant(Replay.defaultClock)!

    init() throws {
        engine = Engine(program: try Compiler.build(rules: Fixtures.pack, config: nil), origin: Origin(name: "test", version: "0"))
    }

    func reading(_ second: Int, _ power: String) -> [UInt8] {
        Array(#"{"id":"33B1225950027","time":"202601121639\#(second)","isend":"1","zyggl":\#(power)}"#.utf8)
    }

    func data(_ out: ProcessOutput) -> [UInt8]? { out.messages.last { $0.kind == .data }?.payload }

    @Test func theNextPayloadIsWrittenIntoTheLastOnesStorage() throws {
        var out = ProcessOutput()
        // The longest value first: the storage never has to grow after it.
        engine.process(topic: "MQTT_RT_DATA", payload: reading(10, "1234.5678"), now: now, into: &out)
        let first = try #require(data(out)).withUnsafeBytes { $0.baseAddress }
        var seen: [UnsafeRawPointer?] = []
        for (i, power) in ["2.25", "3", "1234.5678", "7"].enumerated() {
            out.removeAll()
            engine.process(topic: "MQTT_RT_DATA", payload: reading(11 + i, power), now: now, into: &out)
            let payload = try #require(data(out))
            #expect(String(decoding: payload, as: UTF8.self).contains(#""active_power":\#(power),"#))
            seen.append(payload.withUnsafeBytes { $0.baseAddress })
        }
        #expect(seen.allSatisfy { $0 == first }, "a new buffer per reading: \(seen), first \(String(describing: first))")
    }

    @Test func aPayloadTheCallerKeepsIsNotWrittenOver() throws {
        var out = ProcessOutput()
        engine.process(topic: "MQTT_RT_DATA", payload: reading(10, "1.5"), now: now, into: &out)
        out.removeAll()
        engine.process(topic: "MQTT_RT_DATA", payload: reading(11, "2.25"), now: now, into: &out)
        let kept = try #require(data(out))
        let text = String(decoding: kept, as: UTF8.self)
        for (i, power) in ["9", "123456789.123456789"].enumerated() {
            out.removeAll()
            engine.process(topic: "MQTT_RT_DATA", payload: reading(12 + i, power), now: now, into: &out)
            #expect(String(decoding: try #require(data(out)), as: UTF8.self).contains(#""active_power":\#(power),"#))
        }
        #expect(String(decoding: kept, as: UTF8.self) == text)
        #expect(text.contains(#""active_power":2.25,"#))
    }
}
