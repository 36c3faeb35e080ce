import Foundation
import Testing

/// A fourth model added the way rules/README.md's recipe says, with the
/// `rulecheck` binary run from a shell as a newcomer runs it: new pack →
/// lint → golden case → run → the outputs CI reads. Each step's output is checked.
@Suite struct NewcomerPathTests {
    @Test func aFourthModelFromStartToCI() throws {
        let rulecheck = try Rulecheck()
        defer { rulecheck.cleanup() }

        // 1. A new pack from the nearest one.
        let new = try rulecheck("new", "kpm31a", "--from", "rules/kpm37")
        #expect(new.status == 0)
        #expect(new.stdout.hasPrefix("created rules/kpm31a from rules/kpm37 (pack 'kpm37'):"))

        // 2. It lints clean at once, with the others and the shipped site config.
        #expect(try rulecheck("lint", "rules", "config").stdout == "ok: 4 packs and 18 configs checked\n")

        // 3. Its ids have a prefix: it claims them by pattern.
        try rulecheck.edit("rules/kpm31a/pack.yaml", #"pattern: "^[0-9A-Z]{13}$""#, #"pattern: "^31A[0-9A-Z]{10}$""#)
        try rulecheck.edit("rules/kpm31a/pack.yaml", "claim: site ", "claim: pattern ")
        let lint = try rulecheck("lint", "rules", "config")
        #expect(lint.status == 0)
        #expect(lint.stdout == "ok: 4 packs and 18 configs checked\n")

        // 4. No golden case yet: the tests fail rather than pass on nothing.
        let empty = try rulecheck("test", "rules/kpm31a")
        #expect(empty.status == 1)
        #expect(empty.stdout == "FAIL rules/kpm31a: no golden cases in rules/kpm31a/tests\n0 passed, 1 failed\n")

        // 5. A golden case: a reading in two parts, an all-zero one, a duplicate, a set left open.
        let reading = """
        @now 20260112170000
        MQTT_RT_DATA {"id":"31A1225950001","zyggl":1.5000,"time":"20260112170000","isend":"0"}
        MQTT_RT_DATA {"id":"31A1225950001","ia":2.000,"time":"20260112170000","isend":"1"}
        MQTT_RT_DATA {"id":"31A1225950001","zyggl":0.000,"time":"20260112170001","isend":"1"}
        MQTT_RT_DATA {"id":"31A1225950001","zyggl":1.5000,"ia":2.000,"time":"20260112170000","isend":"1"}
        MQTT_RT_DATA {"id":"31A1225950002","zyggl":1.0000,"time":"20260112170005","isend":"0"}

        """
        rulecheck.write(reading, to: "rules/kpm31a/tests/reading.in")
        let recorded = try rulecheck("test", "rules/kpm31a", "--update")
        #expect(recorded.status == 0)
        #expect(recorded.stdout == "updated reading\n1 passed, 0 failed\n")
        let out = rulecheck.read("rules/kpm31a/tests/reading.out").split(separator: "\n").map(String.init)
        #expect(out.count == 6)
        #expect(out.first?.hasPrefix(#"+ kpm33b/discovery/31A1225950001 {"id":"31A1225950001","manufacturer":"Compere","model":"KPM31A","pack":"kpm31a","#) == true)
        #expect(Array(out.dropFirst()) == [
            #"kpm33b/31A1225950001/seconds {"id":"31A1225950001","time":"20260112170000","active_power":1.5000}"#,
            "# drop all_zero MQTT_RT_DATA: 31A1225950001",
            "# drop duplicate MQTT_RT_DATA: 31A1225950001",
            "# pending incomplete MQTT_RT_DATA: 31A1225950002: 1 of a split set, not complete at the end of the input",
            "# summary: forwarded 1, retained 1, dropped 2 (all_zero 1, duplicate 1), pending 1",
        ])
        #expect(try rulecheck("test", "rules/kpm31a").stdout == "ok   reading\n1 passed, 0 failed\n")

        // 6. A capture through every pack, as the services would run it.
        rulecheck.write(reading.replacingOccurrences(of: "@now 20260112170000\n", with: "")
                        + #"MQTT_RT_DATA {"id":"33B1225950027","zyggl":6.6905,"time":"20260112170000","isend":"1"}"# + "\n",
                        to: "capture.log")
        let run = try rulecheck("run", "--rules", "rules", "--config", "config/config.yaml", "--now", "20260112170000", "--utc-offset", "+00:00",
                                "capture.log")
        #expect(run.status == 0)
        let lines = run.stdout.split(separator: "\n").map(String.init).filter { !$0.hasPrefix("+ ") }
        #expect(lines == [
            #"kpm33b/31A1225950001/seconds {"id":"31A1225950001","time":"20260112170000","active_power":1.5000}"#,
            "# drop all_zero MQTT_RT_DATA: 31A1225950001",
            "# drop duplicate MQTT_RT_DATA: 31A1225950001",
            #"kpm33b/33B1225950027/seconds {"id":"33B1225950027","time":"20260112170000","active_power":6.6905}"#,
            "# pending incomplete MQTT_RT_DATA: 31A1225950002: 1 of a split set, not complete at the end of the input",
            "# summary: forwarded 2, retained 4, dropped 2 (all_zero 1, duplicate 1), pending 1",
        ])

        // 7. A deliberate mistake, as CI reads it.
        try rulecheck.edit("rules/kpm31a/pack.yaml", "- active_power: { from: zyggl,", "- active_power: { from: zygl,")
        let text = try rulecheck("lint", "rules", "config")
        #expect(text.status == 1)
        #expect(text.stdout.hasPrefix("rules/kpm31a/pack.yaml:138:33: error[R004]: unknown tag 'zygl' for MQTT_RT_DATA in route 'seconds'\n"))
        #expect(text.stdout.contains("\nhint: did you mean 'zyggl'?\n"))
        let github = try rulecheck("lint", "--format", "github", "rules", "config")
        #expect(github.status == 1)
        #expect(github.stdout.hasPrefix("::error file=rules/kpm31a/pack.yaml,line=138,col=33,title=R004 A field names a tag its topic does not declare.::unknown tag 'zygl' for MQTT_RT_DATA in route 'seconds'%0Ahint: did you mean 'zyggl'?\n"))
        let json = try rulecheck.parseJSON(try rulecheck("lint", "--format", "json", "rules", "config").stdout)
        let first = try #require((json["diagnostics"] as? [[String: Any]])?.first)
        #expect(first["code"] as? String == "R004")
        #expect(first["file"] as? String == "rules/kpm31a/pack.yaml")
        #expect(first["hint"] as? String == "did you mean 'zyggl'?")
        let sarif = try rulecheck.parseJSON(try rulecheck("lint", "--format", "sarif", "rules", "config").stdout)
        let result = try #require(((sarif["runs"] as? [[String: Any]])?.first?["results"] as? [[String: Any]])?.first)
        #expect(result["ruleId"] as? String == "R004")
        #expect(result["level"] as? String == "error")

        // 8. Fixed, every case of every pack, with a JUnit report for CI.
        try rulecheck.edit("rules/kpm31a/pack.yaml", "- active_power: { from: zygl,", "- active_power: { from: zyggl,")
        let all = try rulecheck("test", "--junit", "results.xml")
        #expect(all.status == 0)
        #expect(all.stdout.hasSuffix("\n20 passed, 0 failed\n"))
        let junit = try JUnit(Data(rulecheck.read("results.xml").utf8))
        #expect(junit.root["tests"] == "20")
        #expect(junit.root["failures"] == "0")
        #expect(junit.suites.first { $0.name == "kpm31a" }?.cases.map(\.name) == ["reading"])
    }
}
