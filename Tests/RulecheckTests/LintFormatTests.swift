import Foundation
import Testing

/// `rulecheck lint --format`: one deliberate mistake (a unit that is not the
/// tag's) in each format CI reads, and usage errors' exit status.
@Suite struct LintFormatTests {
    static let mistake = ("- active_power: { from: zyggl, name: Active power,", "- active_power: { from: zyggl, unit: W, name: Active power,")

    func withMistake(_ body: (Rulecheck) throws -> Void) throws {
        let rulecheck = try Rulecheck()
        defer { rulecheck.cleanup() }
        try rulecheck.edit("rules/kpm33b/pack.yaml", Self.mistake.0, Self.mistake.1)
        try body(rulecheck)
    }

    @Test func textIsUnchanged() throws {
        try withMistake { rulecheck in
            let r = try rulecheck("lint", "rules/kpm33b/pack.yaml")
            #expect(r.status == 1)
            #expect(r.stdout == """
            rules/kpm33b/pack.yaml:104:46: error[R013]: field 'active_power' says unit 'W' but tag 'zyggl' is in 'kW'
             104 |         - active_power: { from: zyggl, unit: W, name: Active power, device_class: power, state_class: measurement, precision: 3 }
                 |                                              ^
            hint: values leave as the meter wrote them; drop 'unit:' to inherit 'kW'
            1 error found
            in 1 pack and 0 configs

            """)
        }
    }

    @Test func json() throws {
        try withMistake { rulecheck in
            let r = try rulecheck("lint", "--format", "json", "rules/kpm33b/pack.yaml")
            #expect(r.status == 1)
            let doc = try rulecheck.parseJSON(r.stdout)
            #expect(doc["errors"] as? Int == 1)
            #expect(doc["warnings"] as? Int == 0)
            #expect(doc["checked"] as? [String: Int] == ["packs": 1, "configs": 0])
            let d = try #require((doc["diagnostics"] as? [[String: Any]])?.first)
            #expect(d["file"] as? String == "rules/kpm33b/pack.yaml")
            #expect(d["line"] as? Int == 104)
            #expect(d["column"] as? Int == 46)
            #expect(d["severity"] as? String == "error")
            #expect(d["code"] as? String == "R013")
            #expect(d["message"] as? String == "field 'active_power' says unit 'W' but tag 'zyggl' is in 'kW'")
            #expect(d["hint"] as? String == "values leave as the meter wrote them; drop 'unit:' to inherit 'kW'")
        }
    }

    @Test func githubAnnotations() throws {
        try withMistake { rulecheck in
            let r = try rulecheck("lint", "--format", "github", "rules/kpm33b/pack.yaml")
            #expect(r.status == 1)
            #expect(r.stdout == """
            ::error file=rules/kpm33b/pack.yaml,line=104,col=46,title=R013 A field's unit differs from its tag's declared unit.::field 'active_power' says unit 'W' but tag 'zyggl' is in 'kW'%0Ahint: values leave as the meter wrote them; drop 'unit:' to inherit 'kW'
            1 error, 0 warnings in 1 pack and 0 configs

            """)
        }
    }

    /// What GitHub code scanning requires of an upload (SARIF 2.1.0): version,
    /// runs[].tool.driver.name, results with ruleId, message.text, level, and a
    /// physical location with a relative artifact URI and a 1-based region.
    @Test func sarif() throws {
        try withMistake { rulecheck in
            let r = try rulecheck("lint", "--format", "sarif", "rules/kpm33b", "config/config.yaml")
            #expect(r.status == 1)
            let doc = try rulecheck.parseJSON(r.stdout)
            #expect(doc["version"] as? String == "2.1.0")
            #expect((doc["$schema"] as? String)?.hasSuffix("sarif-2.1.0.json") == true)
            let runs = try #require(doc["runs"] as? [[String: Any]])
            #expect(runs.count == 1)
            let driver = try #require((runs[0]["tool"] as? [String: Any])?["driver"] as? [String: Any])
            #expect(driver["name"] as? String == "rulecheck")
            let rules = try #require(driver["rules"] as? [[String: Any]])
            #expect(rules.map { $0["id"] as? String } == ["R013"])
            #expect((rules[0]["shortDescription"] as? [String: Any])?["text"] as? String == "A field's unit differs from its tag's declared unit.")
            let results = try #require(runs[0]["results"] as? [[String: Any]])
            #expect(results.count == 1)
            let result = results[0]
            #expect(result["ruleId"] as? String == "R013")
            #expect(result["ruleIndex"] as? Int == 0)
            #expect(result["level"] as? String == "error")
            #expect((result["message"] as? [String: Any])?["text"] as? String
                    == "field 'active_power' says unit 'W' but tag 'zyggl' is in 'kW'\nhint: values leave as the meter wrote them; drop 'unit:' to inherit 'kW'")
            let location = try #require((result["locations"] as? [[String: Any]])?.first?["physicalLocation"] as? [String: Any])
            let artifact = try #require(location["artifactLocation"] as? [String: Any])
            #expect(artifact["uri"] as? String == "rules/kpm33b/pack.yaml")
            #expect(artifact["uriBaseId"] as? String == "%SRCROOT%")
            let region = try #require(location["region"] as? [String: Any])
            #expect(region["startLine"] as? Int == 104)
            #expect(region["startColumn"] as? Int == 46)
        }
    }

    @Test func cleanInEveryFormat() throws {
        let rulecheck = try Rulecheck()
        defer { rulecheck.cleanup() }
        #expect(try rulecheck("lint", "rules", "config").stdout == "ok: 3 packs and 17 configs checked\n")
        let json = try rulecheck("lint", "--format", "json", "rules")
        #expect(json.status == 0)
        #expect((try rulecheck.parseJSON(json.stdout)["diagnostics"] as? [Any])?.isEmpty == true)
        let sarif = try rulecheck("lint", "--format", "sarif", "rules")
        #expect(sarif.status == 0)
        let runs = try rulecheck.parseJSON(sarif.stdout)["runs"] as? [[String: Any]]
        #expect((runs?.first?["results"] as? [Any])?.isEmpty == true)
        #expect(try rulecheck("lint", "--format", "github", "rules").stdout.hasPrefix("ok: 3 packs"))
    }

    /// Failed before: ArgumentParser's usage errors exited 64, the docs said 2.
    @Test func usageErrorsExit2() throws {
        let rulecheck = try Rulecheck()
        defer { rulecheck.cleanup() }
        for arguments in [["lint", "--format", "xml", "rules"], ["lint"], ["lint", "--bogus", "rules"], ["nosuch"],
                          ["lint", "no/such/dir"], ["test", "--only"], ["run"]] {
            let r = try rulecheck.run(arguments)
            #expect(r.status == 2, "rulecheck \(arguments.joined(separator: " ")): \(r.stderr)")
            #expect(r.stdout.isEmpty || arguments == ["nosuch"], "\(arguments)")
        }
        #expect(try rulecheck("--help").status == 0)
    }
}
