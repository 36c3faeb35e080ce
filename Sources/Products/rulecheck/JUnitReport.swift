/// `rulecheck test --junit FILE`: the JUnit XML that CI readers (GitHub's
/// test reporters, GitLab, Jenkins) take: `<testsuites>`, one `<testsuite>`
/// per directory of cases, one `<testcase>` per golden case, a failed case
/// with a `<failure>` whose text is the diff or the reason.
struct JUnitReport {
    struct Failure {
        var message: String
        var body: String
    }

    struct Case {
        var name: String
        var file: String
        var seconds: Double
        var failure: Failure?
    }

    private(set) var suites: [(name: String, cases: [Case])] = []

    mutating func add(suite: String, case name: String, file: String, seconds: Double, failure: Failure?) {
        let c = Case(name: name, file: file, seconds: seconds, failure: failure)
        if let i = suites.firstIndex(where: { $0.name == suite }) { suites[i].cases.append(c) } else { suites.append((suite, [c])) }
    }

    var xml: String {
        func time(_ s: Double) -> String { String(Double(Int((s * 1000).rounded())) / 1000) }
        let all = suites.flatMap(\.cases)
        var out = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
        out += "<testsuites name=\"rulecheck test\" tests=\"\(all.count)\" failures=\"\(all.filter { $0.failure != nil }.count)\" errors=\"0\""
            + " time=\"\(time(all.map(\.seconds).reduce(0, +)))\">\n"
        for suite in suites {
            let failures = suite.cases.filter { $0.failure != nil }.count
            out += "  <testsuite name=\"\(escape(suite.name))\" tests=\"\(suite.cases.count)\" failures=\"\(failures)\" errors=\"0\" skipped=\"0\""
                + " time=\"\(time(suite.cases.map(\.seconds).reduce(0, +)))\">\n"
            for c in suite.cases {
                let head = "    <testcase classname=\"\(escape(suite.name))\" name=\"\(escape(c.name))\" file=\"\(escape(c.file))\" time=\"\(time(c.seconds))\""
                guard let f = c.failure else { out += head + "/>\n"; continue }
                out += head + ">\n"
                out += "      <failure message=\"\(escape(f.message))\" type=\"golden\">\(escape(f.body))</failure>\n"
                out += "    </testcase>\n"
            }
            out += "  </testsuite>\n"
        }
        out += "</testsuites>\n"
        return out
    }

    /// XML text: the five entities, and the control characters XML 1.0 cannot hold replaced.
    private func escape(_ s: String) -> String {
        var out = ""
        for c in s.unicodeScalars {
            switch c {
            case "&": out += "&amp;"
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "\"": out += "&quot;"
            case "'": out += "&apos;"
            case "\n", "\t", "\r": out.unicodeScalars.append(c)
            default: if c.value < 0x20 || c.value == 0xFFFE || c.value == 0xFFFF { out += "?" } else { out.unicodeScalars.append(c) }
            }
        }
        return out
    }
}
