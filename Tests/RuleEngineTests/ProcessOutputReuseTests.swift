import Testing
@testable import RuleEngine
@testable import RuleTesting

/// One `ProcessOutput` across calls (as the proxy keeps it): the next clean
/// payload and topic are written into the storage of the last ones, and a
/// payload or topic the caller still holds is never written over.
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
    func dataTopic(_ out: ProcessOutput) -> String? { out.messages.last { $0.kind == .data }?.topic }
    func address(_ topic: String) -> UnsafePointer<UInt8>? { topic.utf8.withContiguousStorageIfAvailable { $0.baseAddress } ?? nil }

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

    @Test func theNextTopicIsWrittenIntoTheLastOnesStorage() throws {
        var out = ProcessOutput()
        process(reading(10, "1"), into: &out)
        // Not kept in a variable: the next one would need a copy.
        #expect(try #require(dataTopic(out)) == "kpm33b/33B1225950027/seconds")
        let previous = address(try #require(dataTopic(out)))
        #expect(previous != nil, "a topic of 28 bytes is not a small string")
        for (i, power) in ["2", "3"].enumerated() {
            out.removeAll()
            process(reading(11 + i, power), into: &out)
            #expect(try #require(dataTopic(out)) == "kpm33b/33B1225950027/seconds")
            #expect(address(try #require(dataTopic(out))) == previous, "a new topic string for reading \(i + 2)")
        }
        // One the caller keeps is its own.
        let kept = try #require(dataTopic(out))
        out.removeAll()
        process(Array(#"{"id":"33B1225950028","time":"20260112163920","isend":"1","zyggl":4}"#.utf8), into: &out)
        #expect(try #require(dataTopic(out)) == "kpm33b/33B1225950028/seconds")
        #expect(kept == "kpm33b/33B1225950027/seconds")
    }
}
