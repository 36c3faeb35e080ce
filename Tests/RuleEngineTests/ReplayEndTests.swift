import Foundation
import Testing
@testable import RuleEngine
@testable import RuleTesting

/// What a replay says beyond each message: split sets pending at the end,
/// the summary line, the age at which a set expires, the meter in every
/// drop, and the checks that keep a golden case from recording a mistake.
@Suite struct ReplayEndTests {
    static let kpm37 = "\(Fixtures.repository)/rules/kpm37"

    func replay(_ input: String, rules: String = kpm37, several: Bool = false) throws -> [String] {
        let programs = several
            ? try PackFamilyTests.buildAll("\(Fixtures.repository)/rules", "\(Fixtures.repository)/rules/tests/site.yaml")
            : ProgramSet(single: try Compiler.build(rules: rules, config: nil))
        var replay = Replay(router: PackRouter(programs: programs, origin: Origin(name: "test", version: "0")), now: Replay.instant(Replay.defaultClock)!)
        var lines: [String] = []
        try replay.run(Array(input.utf8)) { lines.append($0) }
        replay.end { lines.append($0) }
        return lines
    }

    static let part = #"MQTT_RT_DATA {"id":"37A1225950003","ia":1.000,"time":"20260112170000","isend":"0"}"#

    /// `max_age_s: 60`: a set 59.999 s old waits, one 60 s old is dropped.
    /// Failed before: the engine dropped only sets older than max_age_s, so `@advance 60` kept it.
    @Test func aSetExpiresAtExactlyMaxAge() throws {
        let kept = try replay("\(Self.part)\n@advance 59.999\n")
        #expect(!kept.contains { $0.hasPrefix("# drop incomplete") })
        #expect(kept.contains("# pending incomplete MQTT_RT_DATA: 37A1225950003: 1 of a split set, not complete at the end of the input"))
        let dropped = try replay("\(Self.part)\n@advance 60\n")
        #expect(dropped.first == "# drop incomplete MQTT_RT_DATA: 37A1225950003: 1 of a split set, never completed")
        #expect(!dropped.contains { $0.hasPrefix("# pending") })
    }

    @Test func theEndSaysWhatIsPendingAndCountsEverything() throws {
        let lines = try replay("""
        MQTT_RT_DATA {"id":"37A1225950001","zyggl":1.5000,"time":"20260112170000","isend":"1"}
        MQTT_RT_DATA {"id":"37A1225950001","zyggl":1.5000,"time":"20260112170000","isend":"1"}
        MQTT_RT_DATA {"id":"37A1225950002","zyggl":0.000,"time":"20260112170000","isend":"1"}
        MQTT_RT_DATA {"id":"37A1225950002","zyggl":
        \(Self.part)

        """)
        #expect(Array(lines.suffix(2)) == [
            "# pending incomplete MQTT_RT_DATA: 37A1225950003: 1 of a split set, not complete at the end of the input",
            "# summary: forwarded 1, retained 2, dropped 3 (malformed 1, all_zero 1, duplicate 1), pending 1",
        ])
    }

    /// Failed before: these drops said why, not which meter.
    @Test func dropsNameTheMeterWhenTheIdIsReadable() throws {
        let lines = try replay("""
        MQTT_RT_DATA {"id":"37A1225950001","zyggl":1.5
        MQTT_NOTHING {"id":"37A1225950001"}
        MQTT_RT_DATA {"id":"37a1225950001","zyggl":1.5000,"time":"20260112170000","isend":"1"}

        """)
        #expect(Array(lines.prefix(3)) == [
            "# drop malformed MQTT_RT_DATA: 37A1225950001: truncated JSON at byte 33",
            "# drop unrouted MQTT_NOTHING: 37A1225950001: no route matches this topic",
            "# drop invalid_id MQTT_RT_DATA: '37a1225950001' does not match the pack's pattern",
        ])
    }

    /// Failed before: a wrong_type drop said which field, not which meter.
    @Test func wrongTypeNamesTheMeter() throws {
        let lines = try replay(#"MQTT_RT_DATA {"id":"37A1225950001","zyggl":"1.5","time":"20260112170000","isend":"1"}"# + "\n")
        #expect(lines.first == "# drop wrong_type MQTT_RT_DATA: 37A1225950001: 'zyggl' is a string, expected a number")
        // An id that is not plain printable text is not shown.
        let hostile = try replay(#"MQTT_RT_DATA {"id":"37A 225950001","zyggl":"1.5","time":"20260112170000","isend":"1"}"# + "\n")
        #expect(hostile.first == "# drop wrong_type MQTT_RT_DATA: 'zyggl' is a string, expected a number")
    }

    /// The type check is one mask per slot: every kind a number field must
    /// refuse is refused, null passes the check, and the wrong field is named.
    @Test func everyWrongKindIsRefusedAndNullPasses() throws {
        for (value, kind) in [("true", "boolean"), ("false", "boolean"), ("{}", "object"), ("[1]", "array"), (#""1.5""#, "string")] {
            let lines = try replay(#"MQTT_RT_DATA {"id":"37A1225950001","zyggl":"# + value + #","time":"20260112170000","isend":"1"}"# + "\n")
            #expect(lines.first == "# drop wrong_type MQTT_RT_DATA: 37A1225950001: 'zyggl' is a \(kind), expected a number")
        }
        let null = try replay(#"MQTT_RT_DATA {"id":"37A1225950001","zyggl":null,"time":"20260112170000","isend":"1"}"# + "\n")
        #expect(!null.contains { $0.hasPrefix("# drop wrong_type") })
        let id = try replay(#"MQTT_RT_DATA {"id":7,"zyggl":1.5,"time":"20260112170000","isend":"1"}"# + "\n")
        #expect(id.first == "# drop wrong_type MQTT_RT_DATA: 'id' is a number, expected a string")
    }

    /// Failed before: with several packs a truncated payload whose id no pack claims was `unclaimed`.
    @Test func aTruncatedPayloadIsMalformedWithSeveralPacks() throws {
        let lines = try replay(#"MQTT_RT_DATA {"id":"37A1225950002","zyggl":1.0"# + "\n", several: true)
        #expect(lines.first == "# drop malformed MQTT_RT_DATA: 37A1225950002: truncated JSON at byte 33")
        let ambiguous = try replay(#"MQTT_RT_DATA {"id":"37A1225950002","zyggl":1.0} garbage"# + "\n", several: true)
        #expect(ambiguous.first?.hasPrefix("# drop malformed MQTT_RT_DATA: ") == true)
    }

    func outcome(_ input: String) throws -> GoldenCase.Outcome {
        let dir = Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try FileManager.default.createDirectory(atPath: "\(dir)/tests", withIntermediateDirectories: true)
        try FileManager.default.copyItem(atPath: "\(Self.kpm37)/pack.yaml", toPath: "\(dir)/pack.yaml")
        Fixtures.write(input, to: "\(dir)/tests/case.in")
        let c = try #require(GoldenCase.discover(in: dir).first)
        return try c.replay(origin: Origin(name: "rulecheck", version: "test")) { rules, config throws(DiagnosticReport) in
            ProgramSet(single: try Compiler.build(rules: rules, config: config))
        }.get()
    }

    /// Failed before: such a case was recorded and passed silently.
    @Test func aCaseThatForwardsNothingIsSuspectUnlessItSaysSo() throws {
        let typo = #"MQTT_RT_DATA {"id":"37a1225950001","zyggl":1.5000,"time":"20260112170000","isend":"1"}"# + "\n"
        let suspect = try outcome(typo)
        #expect(suspect.suspicions.count == 1)
        #expect(suspect.suspicions.first?.hasPrefix("it forwards no clean message") == true)
        #expect(try outcome("@expect-drops\n" + typo).suspicions.isEmpty)
    }

    @Test func aClockOffByMoreThanADayIsSuspectUnlessItSaysSo() throws {
        let reading = #"MQTT_RT_DATA {"id":"37A1225950001","zyggl":1.5000,"time":"20260120170000","isend":"1"}"# + "\n"
        #expect(try outcome("@now 20260119170000\n" + reading).suspicions.isEmpty)   // a day exactly
        let suspect = try outcome(reading).suspicions
        #expect(suspect.count == 1)
        #expect(suspect.first?.hasPrefix("a meter's clock is off by 691200 s, more than a day") == true)
        #expect(try outcome("@expect-clock-offset\n" + reading).suspicions.isEmpty)
    }
}
