import Foundation
import Testing
@testable import RuleEngine
@testable import RuleTesting

/// Inputs that once crashed the engine. Each stays here, with what it must
/// produce instead; fuzzer findings are added the same way (docs/fuzzing.md).
@Suite struct CrashRegressionTests {
    /// With one tag behind two fields, a payload whose value is
    /// longer than the rest of the payload overflowed `OutputPlan.render`'s
    /// buffer (sized as if each slot were written once) and trapped.
    @Test func aLongValueBehindTwoFieldsIsWrittenTwice() throws {
        let program = try Fixtures.variant(Fixtures.tagMappedTwice)
        let engine = Engine(program: program, origin: Origin(name: "test", version: "0"))
        // A 2,000-digit number (an integer that long is refused as out of range; a fraction is not).
        let digits = "6." + String(repeating: "7", count: 1998)
        let payload = #"{"id":"33B1225950027","time":"20260112170000","isend":"1","zyggl":\#(digits)}"#
        let out = engine.process(topic: "MQTT_RT_DATA", payload: Array(payload.utf8), now: Replay.instant(Replay.defaultClock)!)
        #expect(out.drops.isEmpty)
        let data = try #require(out.messages.first { $0.kind == .data })
        #expect(String(decoding: data.payload, as: UTF8.self)
            == #"{"id":"33B1225950027","time":"20260112170000","active_power":\#(digits),"active_power_copy":\#(digits)}"#)
    }

    /// The same field layout with every value absent: `null` twice, and a
    /// tag listed in three fields with a value as long as the payload allows.
    @Test func everyFieldSharingOneTag() throws {
        let program = try Fixtures.variant { text in
            let line = "        - active_power: { from: zyggl, name: Active power, device_class: power, state_class: measurement, precision: 3 }\n"
            return text.replacingOccurrences(of: line, with: line
                + "        - p2: { from: zyggl, entity: false }\n        - p3: { from: zyggl, entity: false }\n        - i2: { from: id }\n")
        }
        let engine = Engine(program: program, origin: Origin(name: "test", version: "0"))
        let now = Replay.instant(Replay.defaultClock)!
        let missing = engine.process(topic: "MQTT_RT_DATA", payload: Array(#"{"id":"33B1225950027","time":"20260112163901","isend":"1","ua":1}"#.utf8), now: now)
        #expect(missing.messages.last.map { String(decoding: $0.payload, as: UTF8.self) }
            == #"{"id":"33B1225950027","time":"20260112163901","active_power":null,"p2":null,"p3":null,"i2":"33B1225950027"}"#)
        let long = "1." + String(repeating: "1", count: 9_998)
        let full = engine.process(topic: "MQTT_RT_DATA", payload: Array(#"{"id":"33B1225950027","time":"20260112163902","isend":"1","zyggl":\#(long)}"#.utf8), now: now)
        #expect(full.messages.last.map { String(decoding: $0.payload, as: UTF8.self) }
            == #"{"id":"33B1225950027","time":"20260112163902","active_power":\#(long),"p2":\#(long),"p3":\#(long),"i2":"33B1225950027"}"#)
    }

    /// Found by fuzz-engine (docs/fuzzing.md): a guarded counter rising to
    /// 16.3E49 made a rate too large for `Int` in the drop's detail, and
    /// trapped. It is a counter_glitch like any other implausible rise.
    @Test func aHugeRiseOfAGuardedCounterIsAGlitchNotATrap() throws {
        let engine = Engine(program: try Compiler.build(rules: Fixtures.pack, config: nil), origin: Origin(name: "test", version: "0"))
        let now = Replay.instant(Replay.defaultClock)!
        func energy(_ value: String, _ time: String) -> ProcessOutput {
            engine.process(topic: "MQTT_ENY_NOW", payload: Array(#"{"id":"33B1225950027","zygsz":\#(value),"time":"\#(time)","isend":"1"}"#.utf8), now: now)
        }
        #expect(energy("163.486", "20260117211400").messages.contains { $0.kind == .data })
        for (minute, huge) in ["16.3E49", "1E308", "-1E308"].enumerated() {
            let out = energy(huge, "2026011721\(15 + minute)00")
            #expect(out.messages.isEmpty)
            #expect(out.drops.map(\.reason) == [.counterGlitch], "\(huge): \(out.drops)")
        }
    }

    /// Found while writing the fuzz targets (docs/fuzzing.md): a repeat count
    /// of 20 digits in an id pattern overflowed `Int` and trapped lint and a
    /// service at start-up. Now it is an R009 error.
    @Test func aHugeRepeatCountIsALintError() throws {
        #expect(throws: IDPattern.SyntaxError.self) { try IDPattern("^[0-9A-Z]{99999999999999999999}$") }
        #expect(throws: IDPattern.SyntaxError.self) { try IDPattern("^A{1,99999999999999999999}$") }
        #expect(throws: DiagnosticReport.self) {
            try Fixtures.variant { $0.replacingOccurrences(of: "{10}$", with: "{99999999999999999999}$") }
        }
        #expect(try IDPattern("^A{2,10000}$").matches("AA"))
    }
}
