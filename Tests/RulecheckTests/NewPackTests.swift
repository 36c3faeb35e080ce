import Foundation
import Testing

/// `rulecheck new`, and the shipped site config with each shipped pack alone.
@Suite struct NewPackTests {
    static let shipped = ["kpm312", "kpm33b", "kpm37"]

    /// Each shipped pack as a start: the new pack lints clean alone with its
    /// cases' config, with the shipped site config, and beside every other pack.
    @Test(arguments: shipped) func aNewPackLintsCleanAtOnce(_ source: String) throws {
        let rulecheck = try Rulecheck()
        defer { rulecheck.cleanup() }
        let r = try rulecheck("new", "kpm31a", "--from", "rules/\(source)")
        #expect(r.status == 0, "\(r.stdout)\(r.stderr)")
        #expect(r.stdout.hasPrefix("created rules/kpm31a from rules/\(source) (pack '\(source)'):\n"))
        #expect(try FileManager.default.contentsOfDirectory(atPath: "\(rulecheck.directory)/rules/kpm31a/tests") == ["site.yaml"])
        #expect(try FileManager.default.contentsOfDirectory(atPath: "\(rulecheck.directory)/rules/kpm31a/samples").isEmpty)
        let pack = rulecheck.read("rules/kpm31a/pack.yaml")
        #expect(pack.contains("\npack: kpm31a\n"))
        #expect(pack.contains("model: KPM31A"))
        #expect(pack.contains("\"KPM31A {id}\""))
        let claims = pack.split(separator: "\n").map { $0.trimmingCharacters(in: .whitespaces) }.filter { $0.hasPrefix("claim:") }
        #expect(claims.count == 1)
        #expect(claims.first?.hasPrefix("claim: site ") == true)
        #expect(try rulecheck("lint", "rules/kpm31a").stdout == "ok: 1 pack and 1 config checked\n")
        #expect(try rulecheck("lint", "rules/kpm31a/pack.yaml", "config/config.yaml").stdout == "ok: 1 pack and 1 config checked\n")
        let all = try rulecheck("lint", "rules", "config")
        #expect(all.status == 0)
        #expect(all.stdout == "ok: 4 packs and 18 configs checked\n")
    }

    @Test func itRefusesWhatItCannotDo() throws {
        let rulecheck = try Rulecheck()
        defer { rulecheck.cleanup() }
        let exists = try rulecheck("new", "kpm37", "--from", "rules/kpm33b")
        #expect(exists.status == 2)
        #expect(exists.stderr == "rulecheck: rules/kpm37 exists already; pick another name or --into\n")
        let badName = try rulecheck("new", "KPM 31", "--from", "rules/kpm33b")
        #expect(badName.status == 2)
        let noPack = try rulecheck("new", "x", "--from", "config")
        #expect(noPack.status == 2)
        #expect(noPack.stderr == "rulecheck: no pack.yaml in config\n")
        let elsewhere = try rulecheck("new", "kpm31a", "--from", "rules/kpm33b", "--into", "work")
        #expect(elsewhere.status == 0)
        #expect(rulecheck.exists("work/kpm31a/pack.yaml"))
        #expect(try rulecheck("lint", "work/kpm31a").stdout == "ok: 1 pack and 1 config checked\n")
    }

    /// Failed before when a pack lacked a setting the shipped config sets (C008 alone, a warning with the others).
    @Test(arguments: shipped) func theShippedSiteConfigLintsCleanWithEachPackAlone(_ pack: String) throws {
        let rulecheck = try Rulecheck()
        defer { rulecheck.cleanup() }
        let r = try rulecheck("lint", "rules/\(pack)/pack.yaml", "config/config.yaml")
        #expect(r.status == 0)
        #expect(r.stdout == "ok: 1 pack and 1 config checked\n")
    }
}
