import Foundation
import Testing
@testable import RuleEngine
@testable import RuleTesting

/// Several packs in one process: the KPM37 pack's golden cases, the cases of
/// every pack at once (`rules/tests`), who claims which meter, and lint's
/// checks across packs.
@Suite struct PackFamilyTests {
    static let rules = "\(Fixtures.repository)/rules"
    static let kpm37 = "\(rules)/kpm37"

    static func buildAll(_ rules: String, _ config: String?) throws(DiagnosticReport) -> ProgramSet {
        try Compiler.build(packs: [rules], config: config, shared: [:], readShared: { _, _ in }).programs
    }

    static let cases = GoldenCase.discover(in: kpm37) + GoldenCase.discover(in: "\(rules)/kpm312") + GoldenCase.discover(in: rules)

    @Test func thereAreCases() {
        #expect(Self.cases.contains { $0.name == "split" && $0.packDirectory == Self.kpm37 })
        #expect(Self.cases.contains { $0.name == "claims" && $0.packDirectory == Self.rules })
    }

    @Test(arguments: cases.map { "\($0.packDirectory)|\($0.name)" })
    func goldenCase(_ key: String) throws {
        let c = try #require(Self.cases.first { "\($0.packDirectory)|\($0.name)" == key })
        let expected = try #require(c.expected, "no \(c.outputPath): record it with rulecheck test --update")
        let outcome = try c.replay(origin: Origin(name: "rulecheck", version: "test"), buildAll: Self.buildAll).get()
        #expect(outcome.suspicions.isEmpty, "golden case \(key): \(outcome.suspicions)")
        #expect(outcome.output == expected, "golden case \(key) differs")
    }

    @Test func packDirectoriesAreFound() {
        var problems = DiagnosticReport()
        let files = Compiler.packFiles([Self.rules, Fixtures.pack], into: &problems)
        #expect(problems.diagnostics.isEmpty)
        #expect(files.contains("\(Self.rules)/kpm33b/pack.yaml"))
        #expect(files.contains("\(Self.rules)/kpm37/pack.yaml"))
        #expect(files.filter { $0.hasSuffix("kpm33b/pack.yaml") }.count == 1)
        var missing = DiagnosticReport()
        let none = Compiler.packFiles(["\(Self.rules)/kpm33b/tests"], into: &missing)
        #expect(none.isEmpty)
        #expect(missing.diagnostics.map(\.code) == [.unreadableFile])
    }

    /// With one pack the router is the engine: same output, same drops.
    @Test func onePackIsAPassThrough() throws {
        let program = try Fixtures.program()
        let router = PackRouter(programs: ProgramSet(single: program), origin: Origin(name: "test", version: "0"))
        let engine = Engine(program: program, origin: Origin(name: "test", version: "0"))
        let now = Instant(epochMillis: 1_768_237_200_000)
        for payload in Fixtures.goldenPayloads().prefix(200) {
            let a = router.process(topic: "MQTT_RT_DATA", payload: payload, now: now)
            let b = engine.process(topic: "MQTT_RT_DATA", payload: payload, now: now)
            #expect(a.messages == b.messages)
            #expect(a.drops == b.drops)
        }
    }

    @Test func idPatternsOverlap() throws {
        func p(_ s: String) throws -> IDPattern { try IDPattern(s) }
        #expect(try p("^33B[0-9A-Z]{10}$").overlaps(p("^[0-9A-Z]{13}$")))
        #expect(try !p("^33B[0-9A-Z]{10}$").overlaps(p("^37A[0-9A-Z]{10}$")))
        #expect(try !p("^33B[0-9A-Z]{10}$").overlaps(p("^[0-9A-Z]{12}$")))
        #expect(try p("^A*B$").overlaps(p("^AAAB$")))
        #expect(try !p("^A+$").overlaps(p("^B+$")))
        #expect(try p("^[0-9]{1,20}$").overlaps(p("^9{5,}$")))
    }

    /// Lint across packs: every message, in the site config or the pack it concerns.
    @Test func claimsAreChecked() throws {
        let dir = Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let pack33 = try String(contentsOfFile: "\(Fixtures.pack)/pack.yaml", encoding: .utf8)
        // A second pack claiming every 13-character id by pattern, on the same topics.
        let wide = pack33.replacingOccurrences(of: "pack: kpm33b", with: "pack: wide")
            .replacingOccurrences(of: "\"^33B[0-9A-Z]{10}$\"", with: "\"^[0-9A-Z]{13}$\"")
        for sub in ["kpm33b", "wide"] { try FileManager.default.createDirectory(atPath: "\(dir)/rules/\(sub)", withIntermediateDirectories: true) }
        Fixtures.write(pack33, to: "\(dir)/rules/kpm33b/pack.yaml")
        Fixtures.write(wide, to: "\(dir)/rules/wide/pack.yaml")
        Fixtures.write("""
            default_pack: kpm73
            meters:
              defaults:
                groups: [current]
              "33B1225950027": { context: garage }
              "37A1225950001": { pack: kpm37 }
              "37A1225950002": { pack: wide }
            exclude: ["x/y"]

            """, to: "\(dir)/site.yaml")
        do {
            _ = try Self.buildAll("\(dir)/rules", "\(dir)/site.yaml")
            Issue.record("expected errors")
        } catch {
            let lines = error.diagnostics.map { "\($0.headline) | \($0.hint ?? "")" }.sorted()
            #expect(lines == [
                "\(dir)/rules/wide/pack.yaml:9:14: warning[R016]: the id pattern of pack 'wide' overlaps that of pack 'kpm33b' on MQTT_RT_DATA | an id both claim is dropped as unclaimed unless the site names its pack; narrow a pattern, or set 'claim: site' on one pack",
                "\(dir)/site.yaml:1:15: error[C010]: unknown pack 'kpm73' in 'default_pack' | did you mean 'kpm33b'? packs loaded: kpm33b, wide",
                "\(dir)/site.yaml:5:3: error[C010]: meter '33B1225950027' is claimed by packs 'kpm33b' and 'wide' | add 'pack: kpm33b' (or another) to its entry",
                "\(dir)/site.yaml:6:28: error[C010]: unknown pack 'kpm37' in meter '37A1225950001' | did you mean 'kpm33b'? packs loaded: kpm33b, wide",
                "\(dir)/site.yaml:8:11: error[C002]: 'x/y' is not a valid meter id of any pack | packs loaded: kpm33b, wide",
            ].sorted())
        }
    }

    /// meters.defaults per pack: a group a meter's pack does not declare is ignored for it, with a warning.
    @Test func defaultsApplyPerPack() throws {
        let dir = Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        Fixtures.write("""
            meters:
              defaults:
                groups: [current, temperature]
              "37A1225950001": { pack: kpm37 }

            """, to: "\(dir)/site.yaml")
        let (programs, warnings) = try Compiler.build(packs: [Self.rules], config: "\(dir)/site.yaml", shared: [:], readShared: { _, _ in })
        #expect(warnings.diagnostics.map(\.headline).sorted() == [
            "\(dir)/site.yaml:3:23: warning[C010]: group 'temperature' of meters.defaults is not a group of pack 'kpm312': ignored for its meters",
            "\(dir)/site.yaml:3:23: warning[C010]: group 'temperature' of meters.defaults is not a group of pack 'kpm33b': ignored for its meters",
        ])
        #expect(programs.packNames == ["kpm312", "kpm33b", "kpm37"])
        #expect(programs.program(for: "37A1225950001")?.packName == "kpm37")
        #expect(programs.program(for: "33B1225950027")?.packName == "kpm33b")
        #expect(programs.program(for: "37A1225950002") == nil)
    }

    /// A reload hands every engine its own meters' counters and last-heard
    /// times, whatever the order; what no pack claims is handed back (counters)
    /// or left out (last heard).
    @Test func restoresGoToThePackOfTheirMeter() throws {
        let dir = Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        Fixtures.write("""
            meters:
              "37A1225950001": { pack: kpm37 }

            """, to: "\(dir)/site.yaml")
        let programs = try Compiler.build(packs: [Self.rules], config: "\(dir)/site.yaml", shared: [:], readShared: { _, _ in }).programs
        let router = PackRouter(programs: programs, origin: Origin(name: "test", version: "0"))
        let claimed = [
            CounterSnapshot(device: "37A1225950001", field: "energy", value: 2, time: 20),
            CounterSnapshot(device: "33B1225950027", field: "energy", value: 1, time: 10),
        ]
        let unclaimed = CounterSnapshot(device: "99Z0000000000", field: "energy", value: 3, time: 30)
        #expect(router.restore([claimed[0], unclaimed, claimed[1]]) == [unclaimed])
        #expect(router.engine(for: "33B1225950027")?.counters == [claimed[1]])
        #expect(router.engine(for: "37A1225950001")?.counters == [claimed[0]])

        let t0 = Instant(epochMillis: 1_767_225_600_000), t1 = Instant(epochMillis: 1_767_225_660_000)
        router.restoreHeard([("37A1225950001", t1), ("99Z0000000000", t1), ("33B1225950027", t0)])
        #expect(router.lastHeard("33B1225950027") == t0 && router.lastHeard("37A1225950001") == t1)
        #expect(router.engine(for: "33B1225950027")?.lastHeard("37A1225950001") == nil, "each engine holds only its own meters")
        #expect(router.metersHeard == 2)
    }

    @Test func maskAndClaimMisuseIsReported() throws {
        let dir = Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let pack = try String(contentsOfFile: "\(Self.kpm37)/pack.yaml", encoding: .utf8)
            .replacingOccurrences(of: "claim: site", with: "claim: sit")
            .replacingOccurrences(of: "mask: { part: 0, bit: 1 }, name: Input 2", with: "mask: { part: 9, bit: 1 }, name: Input 2, state_class: measurement")
            .replacingOccurrences(of: "device_class: power }", with: "device_class: powr }")
        Fixtures.write(pack, to: "\(dir)/pack.yaml")
        var report = DiagnosticReport()
        let loaded = Compiler.loadPack(at: dir, into: &report)
        guard Compiler.compile(pack: try #require(loaded), site: SiteConfig(file: "(defaults)"), into: &report) == nil else {
            Issue.record("expected errors")
            return
        }
        let lines = report.diagnostics.map { "\($0.code.rawValue) \($0.message) | \($0.hint ?? "")" }
        #expect(lines.contains("R012 unknown claim 'sit' of the device id | did you mean 'site'?"))
        #expect(lines.contains("R012 mask part 9 of field 'input_2' is out of range | parts count from 0 before the first '@' (0: inputs, 1: outputs in MQTT_TELEIND)"))
        #expect(lines.contains("R015 a mask field is a binary_sensor and takes no state_class | remove state_class"))
        #expect(lines.contains("R015 unknown binary_sensor device_class 'powr' for mask field 'relay' | did you mean 'power'?"))
    }

    @Test func maskBits() {
        func bit(_ part: Int, _ b: Int, _ s: String) -> Bool? {
            Array(s.utf8).withUnsafeBytes { OutputPlan.bit(FieldMask(part: part, bit: b), $0) }
        }
        #expect(bit(0, 0, "00000003@00000001") == true)
        #expect(bit(0, 1, "00000003@00000001") == true)
        #expect(bit(0, 2, "00000003@00000001") == false)
        #expect(bit(1, 0, "00000003@00000001") == true)
        #expect(bit(1, 1, "00000003@00000001") == false)
        #expect(bit(0, 4, "0000001f") == true)
        #expect(bit(1, 0, "0000001f") == nil)
        #expect(bit(0, 0, "@1") == nil)
        #expect(bit(0, 0, "x1@1") == nil)
    }

    /// KPM312: the base id names the meter; the loops are derived, linked, and take no commands.
    @Test func loopsOfAKPM312() throws {
        #expect(Compiler.loopIDs(base: "3121225950040", count: 4) == ["3121225950040", "3121225950041", "3121225950042", "3121225950043"])
        #expect(Compiler.loopIDs(base: "31212259500A8", count: 4) == nil)
        #expect(Compiler.loopIDs(base: "3121225950098", count: 4) == ["3121225950098", "3121225950099", "3121225950100", "3121225950101"])
        #expect(Compiler.loopIDs(base: "312122595AAA8", count: 4) == nil)
        let dir = Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        Fixtures.write("""
            meters:
              "3121225950040": { pack: kpm312 }
              "3121225950042": { pack: kpm312 }
              "312122595AAA8": { pack: kpm312 }

            """, to: "\(dir)/bad.yaml")
        do {
            _ = try Self.buildAll(Self.rules, "\(dir)/bad.yaml")
            Issue.record("expected errors")
        } catch {
            #expect(error.diagnostics.map(\.message).sorted() == [
                "loop id '3121225950042' of meter '3121225950042' is also loop 2 of meter '3121225950040'",
                "loop id '3121225950043' of meter '3121225950042' is also loop 3 of meter '3121225950040'",
                "meter '312122595AAA8' cannot be the base of 4 loops",
            ])
        }
        Fixtures.write("meters:\n  \"3121225950040\": { pack: kpm312 }\n", to: "\(dir)/good.yaml")
        let programs = try Self.buildAll(Self.rules, "\(dir)/good.yaml")
        let now = Instant(epochMillis: 1_768_237_200_000)
        #expect(programs.program(for: "3121225950043")?.packName == "kpm312")
        #expect(programs.program(for: "3121225950044") == nil)
        #expect(programs.renderCommand("set_clock", for: "3121225950040", operationID: String(repeating: "a", count: 32), now: now)?.topic
                == "MQTT_SETTIME_25950040")
        #expect(programs.renderCommand("set_clock", for: "3121225950041", operationID: String(repeating: "a", count: 32), now: now) == nil)
    }
}
