import Foundation
import Testing

#if canImport(FoundationXML)
import FoundationXML
#endif

/// `rulecheck test`: what makes it fail, one case at a time, and its JUnit report.
@Suite struct TestCommandTests {
    /// Failed before: `rulecheck test rules/tests` said "no golden cases" and exited 0.
    @Test func aPathWithoutCasesFails() throws {
        let rulecheck = try Rulecheck()
        defer { rulecheck.cleanup() }
        let r = try rulecheck("test", "rules/tests")
        #expect(r.status == 1)
        #expect(r.stdout == """
        FAIL rules/tests: no golden cases in rules/tests/tests; rules/tests holds cases itself: run rulecheck test rules
        0 passed, 1 failed

        """)
    }

    @Test func oneCase() throws {
        let rulecheck = try Rulecheck()
        defer { rulecheck.cleanup() }
        let one = try rulecheck("test", "rules/kpm33b:clock")
        #expect(one.status == 0)
        #expect(one.stdout == "ok   clock\n1 passed, 0 failed\n")
        let only = try rulecheck("test", "--only", "split")
        #expect(only.status == 0)
        #expect(only.stdout == "ok   kpm37/split\n1 passed, 0 failed\n")
        let across = try rulecheck("test", "rules:claims")
        #expect(across.stdout == "ok   rules/claims\n1 passed, 0 failed\n")
        let none = try rulecheck("test", "rules/kpm33b:nope")
        #expect(none.status == 1)
        #expect(none.stdout == "FAIL rules/kpm33b:nope: no case 'nope' in rules/kpm33b:nope\n0 passed, 1 failed\n")
        // --update of one case rewrites that case only.
        let other = rulecheck.read("rules/kpm33b/tests/groups.out")
        rulecheck.write("stale\n", to: "rules/kpm33b/tests/groups.out")
        try rulecheck.edit("rules/kpm33b/tests/clock.out", "# summary", "# summery")
        let updated = try rulecheck("test", "--update", "rules/kpm33b:clock")
        #expect(updated.stdout == "updated clock\n1 passed, 0 failed\n")
        #expect(rulecheck.read("rules/kpm33b/tests/groups.out") == "stale\n")
        #expect(rulecheck.read("rules/kpm33b/tests/groups.out") != other)
        #expect(rulecheck.read("rules/kpm33b/tests/clock.out").contains("# summary: "))
    }

    /// Failed before: a case whose ids were mistyped was recorded and passed.
    @Test func aCaseThatForwardsNothingFailsUnlessItSaysSo() throws {
        let rulecheck = try Rulecheck()
        defer { rulecheck.cleanup() }
        rulecheck.write(#"MQTT_ENY_NOW {"id":"33B12259500270","zygsz":1.000,"time":"20260112170000","isend":"1"}"# + "\n",
                        to: "rules/kpm33b/tests/typo.in")
        let update = try rulecheck("test", "--update", "rules/kpm33b:typo")
        #expect(update.status == 0)
        #expect(update.stdout == """
        warning: typo: it forwards no clean message (mistyped ids? a topic no route reads?); if that is the point of the case, add a line '@expect-drops' to rules/kpm33b/tests/typo.in
        updated typo
        1 passed, 0 failed

        """)
        #expect(rulecheck.read("rules/kpm33b/tests/typo.out") == """
        # drop invalid_id MQTT_ENY_NOW: '33B12259500270' does not match the pack's pattern
        # summary: forwarded 0, retained 0, dropped 1 (invalid_id 1), pending 0

        """)
        let test = try rulecheck("test", "rules/kpm33b:typo")
        #expect(test.status == 1)
        #expect(test.stdout.hasPrefix("FAIL typo: it forwards no clean message"))
        rulecheck.write("@expect-drops\n" + rulecheck.read("rules/kpm33b/tests/typo.in"), to: "rules/kpm33b/tests/typo.in")
        #expect(try rulecheck("test", "rules/kpm33b:typo").status == 0)
    }

    /// One testcase per golden case, grouped per directory; a failure carries the diff.
    @Test func junit() throws {
        let rulecheck = try Rulecheck()
        defer { rulecheck.cleanup() }
        try rulecheck.edit("rules/kpm37/tests/split.out", "37A1225950004: 1 of a split set", "37A1225950004: 2 of a split set")
        let r = try rulecheck("test", "--junit", "results.xml")
        #expect(r.status == 1)
        let xml = rulecheck.read("results.xml")
        let report = try JUnit(Data(xml.utf8))
        let cases = ((try? FileManager.default.contentsOfDirectory(atPath: "\(rulecheck.directory)/rules/kpm33b/tests")) ?? []).filter { $0.hasSuffix(".in") }
        #expect(report.root["name"] == "rulecheck test")
        #expect(report.root["tests"] == "19")
        #expect(report.root["failures"] == "1")
        #expect(report.suites.map(\.name) == ["kpm312", "kpm33b", "kpm37", "rules"])
        #expect(report.suites[1].cases.count == cases.count)
        #expect(report.suites.flatMap(\.cases).count == 19)
        let failed = report.suites.flatMap(\.cases).filter { $0.failure != nil }
        #expect(failed.map(\.name) == ["split"])
        #expect(failed.first?.classname == "kpm37")
        #expect(failed.first?.failureMessage == "output differs")
        #expect(failed.first?.failure?.contains("-# pending incomplete MQTT_RT_DATA: 37A1225950004: 2 of a split set") == true)
        #expect(failed.first?.failure?.contains("+# pending incomplete MQTT_RT_DATA: 37A1225950004: 1 of a split set") == true)
        #expect(report.suites.flatMap(\.cases).allSatisfy { Double($0.time) != nil })
    }
}

/// A JUnit report read as CI readers read it: an XML parser, not string matching.
struct JUnit {
    struct Case {
        var classname = "", name = "", time = ""
        var failure: String?
        var failureMessage: String?
    }

    var root: [String: String] = [:]
    var suites: [(name: String, cases: [Case])] = []

    init(_ data: Data) throws {
        let delegate = Delegate()
        let parser = XMLParser(data: data)
        parser.delegate = delegate
        #expect(parser.parse(), "not well-formed XML: \(String(describing: parser.parserError))")
        root = delegate.root
        suites = delegate.suites
    }

    final class Delegate: NSObject, XMLParserDelegate {
        var root: [String: String] = [:]
        var suites: [(name: String, cases: [Case])] = []
        var text: String?

        func parser(_ parser: XMLParser, didStartElement element: String, namespaceURI: String?, qualifiedName: String?,
                    attributes: [String: String] = [:]) {
            switch element {
            case "testsuites": root = attributes
            case "testsuite": suites.append((attributes["name"] ?? "", []))
            case "testcase":
                suites[suites.count - 1].cases.append(Case(classname: attributes["classname"] ?? "", name: attributes["name"] ?? "",
                                                            time: attributes["time"] ?? ""))
            case "failure":
                text = ""
                let i = suites.count - 1
                suites[i].cases[suites[i].cases.count - 1].failureMessage = attributes["message"]
            default: break
            }
        }

        func parser(_ parser: XMLParser, foundCharacters string: String) { text? += string }

        func parser(_ parser: XMLParser, didEndElement element: String, namespaceURI: String?, qualifiedName: String?) {
            guard element == "failure" else { return }
            let i = suites.count - 1
            suites[i].cases[suites[i].cases.count - 1].failure = text
            text = nil
        }
    }
}
