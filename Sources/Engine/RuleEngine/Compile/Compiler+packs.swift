import YAML

/// Several packs in one process: finding them, giving each its view of the
/// site config, and the checks across packs (who claims which meter).
extension Compiler {
    /// The pack files under `paths`: a directory holding `pack.yaml` is one
    /// pack; a directory of such directories is several (sorted by name); a
    /// `.yaml` file is a pack file. A path that yields none is an error (in `report`).
    public static func packFiles(_ paths: [String], into report: inout DiagnosticReport) -> [String] {
        var files: [String] = []
        var problems: [Diagnostic] = []
        for path in paths {
            if path.hasSuffix(".yaml") || path.hasSuffix(".yml") { files.append(path); continue }
            let dir = path.hasSuffix("/") ? String(path.dropLast()) : path
            if FileSystem.exists("\(dir)/pack.yaml") { files.append("\(dir)/pack.yaml"); continue }
            let subs = (FileSystem.list(dir) ?? []).sorted().filter { !$0.hasPrefix(".") && FileSystem.exists("\(dir)/\($0)/pack.yaml") }
            if subs.isEmpty {
                problems.append(Diagnostic(.unreadableFile, "no rule pack in '\(path)'",
                                           hint: "name a directory holding pack.yaml, or a directory of such directories",
                                           file: path, at: Mark(line: 1, column: 1)))
            }
            files += subs.map { "\(dir)/\($0)/pack.yaml" }
        }
        report.merge(DiagnosticReport(diagnostics: problems))
        var seen: Set<String> = []
        return files.filter { seen.insert($0).inserted }
    }

    /// Loads, checks and compiles every pack under `rules` with one site
    /// config: the services' and rulecheck's path. Throws every diagnostic
    /// when there is an error; otherwise returns the warnings.
    package static func build(packs rules: [String], config: String?, shared: [String: [String]],
                              readShared: (YAMLNode, LoadContext) -> Void) throws(DiagnosticReport) -> (programs: ProgramSet, warnings: DiagnosticReport) {
        var report = DiagnosticReport()
        let files = packFiles(rules, into: &report)
        let packs = files.compactMap { loadPack(at: $0, into: &report) }
        var site = SiteConfig(file: config ?? "(defaults)")
        if let config, let loaded = loadSiteConfig(at: config, shared: shared, into: &report, readShared: readShared) {
            site = loaded
        }
        guard !files.isEmpty, packs.count == files.count,
              let programs = compile(packs: packs, site: site, into: &report), !report.hasErrors else { throw report }
        return (programs, report)
    }

    /// Checks packs against one site config and compiles each with its view
    /// of it; every diagnostic (errors and warnings) goes into `report`. Nil
    /// when any pack does not compile.
    public static func compile(packs: [RulePack], site: SiteConfig, into report: inout DiagnosticReport) -> ProgramSet? {
        let plan = PackPlan(packs: packs, site: site)
        var found = DiagnosticReport(diagnostics: plan.packDiagnostics + plan.siteContext.diagnostics)
        var programs: [Program] = []
        for (i, pack) in packs.enumerated() {
            if let p = compile(pack: pack, site: plan.views[i], into: &found) { programs.append(p) }
        }
        // The same problem found once per pack (an unknown group of the defaults) is reported once.
        report.merge(found.deduplicated())
        guard programs.count == packs.count, !found.hasErrors else { return nil }
        if programs.count == 1 { return ProgramSet(single: programs[0]) }
        return ProgramSet(programs: programs, siteConfig: site, assigned: plan.assigned, defaultPack: plan.defaultPack)
    }
}

extension DiagnosticReport {
    /// The same problem found once per pack (an unknown group of the defaults) is reported once.
    func deduplicated() -> DiagnosticReport {
        var seen: Set<String> = []
        var out = self
        out.diagnostics = diagnostics.filter { seen.insert($0.headline).inserted }
        return out
    }
}

/// Which pack runs which listed meter, and each pack's view of the site config.
struct PackPlan {
    /// Problems in the packs' files (a name twice, overlapping claims).
    var packDiagnostics: [Diagnostic] = []
    let siteContext: LoadContext
    var views: [SiteConfig] = []
    var assigned: [String: Int] = [:]
    var defaultPack: Int?

    init(packs: [RulePack], site: SiteConfig) {
        siteContext = LoadContext(file: site.file)
        let names = packs.map(\.name.value)
        let patterns: [IDPattern?] = packs.map { p in p.device.pattern.flatMap { try? IDPattern($0.value) } }
        let claimsByPattern = packs.map { $0.device.claim?.value != "site" }
        func valid(_ i: Int, _ id: String) -> Bool {
            !id.isEmpty && !id.contains(where: { "/+#\0".contains($0) }) && (patterns[i]?.matches(id) ?? true)
        }
        func packIndex(_ name: Located<String>, _ what: String) -> Int? {
            if let i = names.firstIndex(of: name.value) { return i }
            siteContext.error(.meterPack, "unknown pack '\(name.value)' in \(what)",
                              hint: (Suggestion.hint(for: name.value, in: names).map { $0 + " " } ?? "") + "packs loaded: \(names.joined(separator: ", "))",
                              at: name.mark)
            return nil
        }
        let single = packs.count == 1
        if let d = site.defaultPack { defaultPack = packIndex(d, "'default_pack'") }

        // The same pack twice, and packs whose patterns claim the same ids on a shared topic.
        for i in packs.indices {
            for j in packs.indices where j < i {
                if names[i] == names[j] {
                    packDiagnostics.append(Diagnostic(.packClaim, "pack '\(names[i])' is loaded twice (also from \(packs[j].file))",
                                                      hint: "give each pack its own 'pack:' name", file: packs[i].file, at: packs[i].name.mark))
                    continue
                }
                guard claimsByPattern[i], claimsByPattern[j], let a = patterns[i], let b = patterns[j] else { continue }
                let shared = packs[i].routes.flatMap { r in packs[j].routes.filter { TopicMatcher.overlap($0.match.value, r.match.value) }.map { $0.match.value } }
                guard let topic = shared.first, a.overlaps(b) else { continue }
                packDiagnostics.append(Diagnostic(
                    .packClaim, "the id pattern of pack '\(names[i])' overlaps that of pack '\(names[j])' on \(topic)",
                    hint: "an id both claim is dropped as unclaimed unless the site names its pack; narrow a pattern, or set 'claim: site' on one pack",
                    file: packs[i].file, at: packs[i].device.pattern?.mark ?? packs[i].name.mark, severity: .warning))
            }
        }

        // Listed meters: the named pack, else the one pack claiming the id, else default_pack.
        var owners: [String: Int] = [:]
        for (id, meter) in site.meters.sorted(by: { $0.key < $1.key }) {
            let mark = site.meterMarks[id] ?? Mark(line: 1, column: 1)
            if let name = meter.pack {
                if let i = packIndex(name, "meter '\(id)'") { owners[id] = i }
                continue
            }
            if single { owners[id] = 0; continue }
            let claimers = packs.indices.filter { claimsByPattern[$0] && valid($0, id) }
            if claimers.count == 1 {
                owners[id] = claimers[0]
            } else if claimers.count > 1 {
                siteContext.error(.meterPack, "meter '\(id)' is claimed by packs \(claimers.map { "'\(names[$0])'" }.joined(separator: " and "))",
                                  hint: "add 'pack: \(names[claimers[0]])' (or another) to its entry", at: mark)
            } else if let d = defaultPack {
                owners[id] = d
            } else {
                siteContext.warning(.meterPack, "no pack claims meter '\(id)': its readings are dropped as unclaimed",
                                    hint: "add 'pack: NAME' to its entry (packs: \(names.joined(separator: ", "))) or set 'default_pack'", at: mark)
            }
        }
        // A meter with several loops (device.loops): its other ids belong to its pack too.
        for (id, i) in owners.sorted(by: { $0.key < $1.key }) {
            guard let n = packs[i].device.loops?.value, n > 1, let ids = Compiler.loopIDs(base: id, count: n) else { continue }
            for loop in ids.dropFirst() where owners[loop] == nil { owners[loop] = i }
        }
        if !single { assigned = owners }

        // Each pack's view: its meters, the defaults it declares, the exclusions its ids can be.
        let allGroups = Set(packs.flatMap { $0.routes.flatMap { $0.groups.map(\.name.value) } })
        let allSettings = Set(packs.flatMap { $0.settings.map(\.name.value) })
        var excludedSomewhere: Set<Int> = []
        for (i, pack) in packs.enumerated() {
            var view = site
            if !single {
                view.meters = site.meters.filter { owners[$0.key] == i }
                let groups = Set(pack.routes.flatMap { $0.groups.map(\.name.value) })
                let settings = Set(pack.settings.map(\.name.value))
                view.defaults.groups = site.defaults.groups?.filter { g in
                    if groups.contains(g.value) || !allGroups.contains(g.value) { return true }
                    siteContext.warning(.meterPack, "group '\(g.value)' of meters.defaults is not a group of pack '\(pack.name.value)': ignored for its meters",
                                        hint: "groups of '\(pack.name.value)': \(groups.sorted().joined(separator: ", "))", at: g.mark)
                    return false
                }
                view.defaults.settings = site.defaults.settings.filter { name, value in
                    if settings.contains(name) || !allSettings.contains(name) { return true }
                    siteContext.warning(.meterPack, "setting '\(name)' of meters.defaults is not a setting of pack '\(pack.name.value)': ignored for its meters",
                                        hint: "settings of '\(pack.name.value)': \(settings.sorted().joined(separator: ", "))", at: value.mark)
                    return false
                }
                view.exclude = site.exclude.enumerated().filter { k, e in
                    guard valid(i, e.value) else { return false }
                    excludedSomewhere.insert(k)
                    return true
                }.map(\.element)
            }
            views.append(view)
        }
        if !single {
            for (k, e) in site.exclude.enumerated() where !excludedSomewhere.contains(k) {
                siteContext.error(.invalidName, "'\(e.value)' is not a valid meter id of any pack",
                                  hint: "packs loaded: \(names.joined(separator: ", "))", at: e.mark)
            }
        }
    }

}
