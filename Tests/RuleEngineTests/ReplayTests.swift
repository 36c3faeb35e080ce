import Foundation
import Testing
@testable import RuleEngine
@testable import RuleTesting

/// Captures with receive times (`mosquitto_sub -F '%U %t %p'` and `-F '%I %t %p'`).
@Suite struct ReplayTests {
    func time(_ line: String) -> Int64? {
        Replay.receiveTime(ArraySlice(Array(line.utf8)))?.epochMillis
    }

    @Test func unixTimeWithFraction() {
        #expect(time("1768233600.123456789 MQTT_ENY_NOW {}") == 1_768_233_600_123)
        #expect(time("1768233600.5 T {}") == 1_768_233_600_500)
        // No fraction, no time: a topic may be all digits.
        #expect(time("1768233600 T {}") == nil)
        #expect(time("12345 {}") == nil)
        #expect(time("MQTT_ENY_NOW {\"id\":\"x\"}") == nil)
    }

    @Test func iso8601() {
        let utc: Int64 = 1_768_237_200_000   // 2026-01-12T17:00:00Z
        #expect(time("2026-01-12T17:00:00Z T {}") == utc)
        #expect(time("2026-01-12T18:00:00+0100 T {}") == utc)
        #expect(time("2026-01-12T18:00:00+01:00 T {}") == utc)
        #expect(time("2026-01-12T12:30:00-04:30 T {}") == utc)
        #expect(time("2026-01-12T17:00:00.25Z T {}") == utc + 250)
        #expect(time("2026-01-12T17:00:00 T {}") == nil)       // no offset: ambiguous, refused
        #expect(time("2026-13-12T17:00:00Z T {}") == nil)
    }

    @Test func offsets() {
        #expect(Replay.utcOffset("+01:00") == 3600)
        #expect(Replay.utcOffset("-0530") == -19800)
        #expect(Replay.utcOffset("+02") == 7200)
        #expect(Replay.utcOffset("Z") == 0)
        #expect(Replay.utcOffset("01:00") == nil)
        #expect(Replay.utcOffset("+1:00") == nil)
        #expect(Replay.utcOffset("+25:00") == nil)
    }

    /// The clock follows the capture, in the site's zone: a meter stamping
    /// local time at a UTC+1 site shows no offset; without @tz it shows 3,600 s.
    @Test func theReplayClockFollowsTheCapture() throws {
        let program = try Fixtures.program(siteYAML: "root_topic: kpm33b\nhomeassistant: { enabled: false }\n")
        func discoveries(_ input: String) throws -> [String] {
            var replay = Replay(router: PackRouter(programs: ProgramSet(single: program), origin: Origin(name: "test", version: "0")), now: Replay.instant(Replay.defaultClock)!)
            var lines: [String] = []
            try replay.run(Array(input.utf8)) { lines.append($0) }
            return lines.filter { $0.hasPrefix("+ kpm33b/discovery/") }
        }
        let capture = """
        1768233600.100 MQTT_ENY_NOW {"id":"33B1225950027","time":"20260112170000","isend":"1","zygsz":1.5}
        2026-01-12T17:15:00.100+01:00 MQTT_ENY_NOW {"id":"33B1225950027","time":"20260112171500","isend":"1","zygsz":1.6}
        1768235400.100 MQTT_ENY_NOW {"id":"33B1225950027","time":"20260112173000","isend":"1","zygsz":1.7}

        """
        let atUTC = try discoveries(capture)
        #expect(atUTC.count == 1)
        #expect(atUTC.first?.hasSuffix(#""clock_offset_s":3600}"#) == true)
        let atSite = try discoveries("@tz +01:00\n" + capture)
        #expect(atSite.count == 1)
        #expect(atSite.first?.contains("clock_offset_s") == false)
        // The same lines without times keep working, on a frozen clock: every
        // reading then looks 15 minutes further off, and is re-announced.
        let untimed = capture.split(separator: "\n").map { $0.split(separator: " ", maxSplits: 1)[1] }.joined(separator: "\n")
        #expect(try discoveries("@now 20260112170000\n" + untimed).count == 3)
    }

    @Test func badDirectives() throws {
        let program = try Fixtures.program()
        var replay = Replay(router: PackRouter(programs: ProgramSet(single: program), origin: Origin(name: "test", version: "0")), now: Replay.instant(Replay.defaultClock)!)
        #expect(throws: Replay.LineError.self) { try replay.run(Array("@tz CET\n".utf8)) { _ in } }
    }
}
