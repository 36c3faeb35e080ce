import Testing
@testable import RuleEngine
@testable import RuleTesting

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

    func process(_ payload: [UInt8], into out: inout ProcessOutput) {
        payload.withUnsafeBytes { engine.process(topic: "MQTT_RT_DATA", payload: $0, now: now, into: &out) }
    }

    func data(_ out: ProcessOutput) -> [UInt8]? { out.messages.last { $0.kind == .data }?.payload }

    @Test func theNextPayloadIsWrittenIntoTheLastOnesStorage() throws {
        var out = ProcessOutput()
        // The longest value first: the storage never has to grow after it.
        process(reading(10, "1234.5678"), into: &out)
        for (i, power) in ["2.25", "3", "1234.5678", "7"].enumerated() {
            let previous = try #require(data(out)).withUnsafeBytes { $0.baseAddress }
            out.removeAll()
            #expect(out.spare.withUnsafeBytes { $0.baseAddress } == previous, "the last payload's storage is not kept")
            process(reading(11 + i, power), into: &out)
            let payload = try #require(data(out))
            #expect(String(decoding: payload, as: UTF8.self).contains(#""active_power":\#(power)}"#))
            #expect(payload.withUnsafeBytes { $0.baseAddress } == previous, "a new buffer for reading \(i + 2)")
        }
    }

    @Test func aPayloadTheCallerKeepsIsNotWrittenOver() throws {
        var out = ProcessOutput()
        process(reading(10, "1.5"), into: &out)
        out.removeAll()
        process(reading(11, "2.25"), into: &out)
        let kept = try #require(data(out))
        let text = String(decoding: kept, as: UTF8.self)
        for (i, power) in ["9", "123456789.123456789"].enumerated() {
            out.removeAll()
            process(reading(12 + i, power), into: &out)
            #expect(String(decoding: try #require(data(out)), as: UTF8.self).contains(#""active_power":\#(power)}"#))
        }
        #expect(String(decoding: kept, as: UTF8.self) == text)
        #expect(text.contains(#""active_power":2.25}"#))
    }

    /// The clean topic is written into the last one's storage too: meter
    /// after meter, each message names its own meter, and a message the
    /// caller keeps keeps its topic.
    @Test func theTopicIsWrittenIntoTheLastOnesStorageAndNamesItsMeter() throws {
        var out = ProcessOutput()
        func reading(_ id: String, _ second: Int) -> [UInt8] {
            Array(#"{"id":"\#(id)","time":"202601121639\#(second)","isend":"1","zyggl":1.5}"#.utf8)
        }
        func topic(_ out: ProcessOutput) -> [UInt8]? { out.messages.last { $0.kind == .data }?.topicBytes }
        process(reading("33B1225950027", 10), into: &out)
        process(reading("33B1225950028", 10), into: &out)
        out.removeAll()
        process(reading("33B1225950027", 11), into: &out)
        let storage = try #require(topic(out)).withUnsafeBytes { $0.baseAddress }
        for (i, id) in ["33B1225950028", "33B1225950027", "33B1225950028"].enumerated() {
            out.removeAll()
            #expect(out.spareTopic.withUnsafeBytes { $0.baseAddress } == storage, "the last topic's storage is not kept")
            process(reading(id, 12 + i), into: &out)
            #expect(out.messages.last { $0.kind == .data }?.topic == "kpm33b/\(id)/seconds")
            #expect(try #require(topic(out)).withUnsafeBytes { $0.baseAddress } == storage, "a new topic buffer for reading \(i + 2)")
        }
        let kept = out.messages.last { $0.kind == .data }
        // Once a message is kept, the next topic has storage of its own.
        out.removeAll()
        process(reading("33B1225950027", 20), into: &out)
        #expect(try #require(topic(out)) == Array("kpm33b/33B1225950027/seconds".utf8))
        #expect(kept?.topic == "kpm33b/33B1225950028/seconds")
    }
}
