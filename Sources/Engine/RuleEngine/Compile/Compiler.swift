#if canImport(Glibc)
import Glibc
#endif
import Topics
import YAML

/// The one path every user of the engine takes: load → check → compile.
///
/// `rulecheck`, the golden tests and both services call these functions, so
/// what lint accepts is exactly what a service will run. Every pass collects
/// all of its problems before anything fails.
///
/// One error style: each pass adds its diagnostics to a report the caller
/// owns (`into:`) and returns what it could make of the input (nil when
/// nothing usable), so a caller can run the next pass on a pack that had
/// errors and report everything at once; `build`, the whole path in one
/// call, throws that report when it holds an error.
public enum Compiler {
    /// Loads `DIR/pack.yaml` (or a pack file given directly) and adds its
    /// diagnostics, with the pack's text, to `report`.
    public static func loadPack(at path: String, into report: inout DiagnosticReport) -> RulePack? {
        let file = path.hasSuffix(".yaml") || path.hasSuffix(".yml") ? path : (path.hasSuffix("/") ? path + "pack.yaml" : path + "/pack.yaml")
        var failure: Int32 = 0
        guard let bytes = FileSystem.read(file, failure: &failure) else {
            report.merge(DiagnosticReport(diagnostics: [unreadable(file, failure)]))
            return nil
        }
        let (pack, diagnostics) = PackLoader.load(bytes: bytes, file: file)
        report.merge(DiagnosticReport(diagnostics: diagnostics, sources: [file: SourceText(path: file, bytes: bytes)]))
        return pack
    }

    /// Reads and parses a site config once. The engine reads its keys; the keys
    /// another reader owns (`shared`, by section, `""` for the top level) are
    /// accepted, and `readShared` reads them from the same tree into the same
    /// diagnostics (it is not called when the file is empty or does not parse).
    package static func loadSiteConfig(at file: String, shared: [String: [String]], into report: inout DiagnosticReport,
                                       readShared: (YAMLNode, LoadContext) -> Void) -> SiteConfig? {
        var failure: Int32 = 0
        guard let bytes = FileSystem.read(file, failure: &failure) else {
            report.merge(DiagnosticReport(diagnostics: [unreadable(file, failure)]))
            return nil
        }
        let ctx = LoadContext(file: file, isSiteConfig: true)
        let root = ctx.parse(bytes)
        let config = SiteConfigLoader.load(root, ctx, shared: shared)
        if let root { readShared(root, ctx) }
        report.merge(DiagnosticReport(diagnostics: ctx.diagnostics, sources: [file: SourceText(path: file, bytes: bytes)]))
        return config
    }

    /// Loads, checks and compiles a pack with a site config (none: the defaults)
    /// — the one load path. `shared` and `readShared` as in `loadSiteConfig`:
    /// the site settings target reads the services' keys with them. Throws every
    /// diagnostic when there is an error; otherwise returns the warnings.
    package static func build(rules: String, config: String?, shared: [String: [String]],
                              readShared: (YAMLNode, LoadContext) -> Void) throws(DiagnosticReport) -> (program: Program, warnings: DiagnosticReport) {
        var report = DiagnosticReport()
        let pack = loadPack(at: rules, into: &report)
        var site = SiteConfig(file: config ?? "(defaults)")
        if let config, let loaded = loadSiteConfig(at: config, shared: shared, into: &report, readShared: readShared) {
            site = loaded
        }
        // Check even when loading found problems: one run reports everything.
        guard let pack, let program = compile(pack: pack, site: site, into: &report), !report.hasErrors else { throw report }
        return (program, report)
    }

    /// The engine alone: a site config with the rules' keys only (the golden
    /// tests of the engine, engine-bench). Services and rulecheck use
    /// `Site.load` of the site settings target, which reads every key.
    package static func build(rules: String, config: String?) throws(DiagnosticReport) -> Program {
        try build(rules: rules, config: config, shared: [:], readShared: { _, _ in }).program
    }

    /// The whole load → check → compile path on texts instead of files (the
    /// YAML fuzz target): every diagnostic, rendered, or nil when it compiled.
    package static func check(pack: [UInt8], site: [UInt8]?) -> String? {
        let packFile = "pack.yaml", siteFile = "site.yaml"
        let (loaded, packDiagnostics) = PackLoader.load(bytes: pack, file: packFile)
        var report = DiagnosticReport(diagnostics: packDiagnostics, sources: [packFile: SourceText(path: packFile, bytes: pack)])
        var config = SiteConfig(file: "(defaults)")
        if let site {
            let ctx = LoadContext(file: siteFile, isSiteConfig: true)
            if let c = SiteConfigLoader.load(ctx.parse(site), ctx, shared: [:]) { config = c }
            report.merge(DiagnosticReport(diagnostics: ctx.diagnostics, sources: [siteFile: SourceText(path: siteFile, bytes: site)]))
        }
        if let loaded { _ = compile(pack: loaded, site: config, into: &report) }
        return report.diagnostics.isEmpty ? nil : report.description
    }

    /// F001, with the system's reason (`No such file or directory`, `Permission denied`).
    private static func unreadable(_ file: String, _ failure: Int32) -> Diagnostic {
        Diagnostic(.unreadableFile, "cannot read '\(file)': \(String(cString: strerror(failure)))",
                   hint: "check the path and its permissions", file: file, at: Mark(line: 1, column: 1))
    }

    /// Checks a loaded pack against a site config, adds every problem to
    /// `report` and returns the program, or nil when the check found an error.
    public static func compile(pack: RulePack, site: SiteConfig, into report: inout DiagnosticReport) -> Program? {
        var c = Checker(pack: pack, site: site)
        let program = c.run()
        let diagnostics = c.packContext.diagnostics + c.siteContext.diagnostics
        report.merge(DiagnosticReport(diagnostics: diagnostics))
        if let program, !diagnostics.contains(where: { $0.severity == .error }) { return program }
        return nil
    }
}

/// The checking passes. Each records problems and carries on with what it can,
/// so one run reports everything.
struct Checker {
    let pack: RulePack
    let site: SiteConfig
    let packContext: LoadContext
    let siteContext: LoadContext

    init(pack: RulePack, site: SiteConfig) {
        self.pack = pack
        self.site = site
        self.packContext = LoadContext(file: pack.file)
        self.siteContext = LoadContext(file: site.file, isSiteConfig: true)
    }

    /// Records an error once: fields sharing a tag can find the same fault
    /// at the same place (a unit written once under 'tags').
    func error(_ code: Diagnostic.Code, _ message: String, hint: String? = nil, at mark: Mark) {
        if packContext.diagnostics.contains(where: { $0.code == code && $0.mark == mark && $0.message == message }) { return }
        packContext.error(code, message, hint: hint, at: mark)
    }

    mutating func run() -> Program? {
        let device = checkDevice()
        let settings = checkSettings()
        let routes = checkRoutes(device: device, settings: settings)
        let discovery = checkTemplate(pack.discoveryTopic, allowed: deviceVariables(device), what: "the discovery topic")
        let (operationID, commands, replies) = checkCommands(device: device, settings: settings)
        let compiledSite = checkSite(device: device, routes: routes, settings: settings)

        var matcher = TopicMatcher()
        for route in routes { matcher.insert(route.filter, value: route.index) }
        guard let device, let compiledSite else { return nil }
        return Program(
            packName: pack.name.value, matcher: matcher, routes: routes, device: device, site: compiledSite,
            discoveryTopic: discovery, settings: settings, operationID: operationID, commands: commands, replies: replies,
            claimsByPattern: pack.device.claim?.value != "site")
    }

    // MARK: device

    func deviceVariables(_ device: CompiledDevice?) -> [String] {
        ["root", "context", "id"] + (device?.forms.map(\.name) ?? [])
    }

    func checkDevice() -> CompiledDevice? {
        let d = pack.device
        var pattern: IDPattern?
        if let p = d.pattern {
            do {
                let compiled = try IDPattern(p.value)
                pattern = compiled
                let unsafe = compiled.topicUnsafeBytes.map { $0 == 0 ? "NUL" : "'\(Character(Unicode.Scalar($0)))'" }
                if !unsafe.isEmpty {
                    error(.unsafeTopicValue, "the id pattern lets \(unsafe.joined(separator: ", ")) into topics",
                          hint: "ids become topic levels; use a class such as [0-9A-Z] instead of '.' or a negated class", at: p.mark)
                }
                if compiled.acceptsEmpty {
                    error(.unsafeTopicValue, "the id pattern accepts an empty id", hint: "require at least one character, e.g. {13} or +", at: p.mark)
                }
            } catch {
                self.error(.invalidPattern, "invalid id pattern: \(error.message)",
                           hint: "id patterns support literals, '.', [classes] and ?, *, +, {n,m}", at: p.mark)
            }
        } else {
            error(.unsafeTopicValue, "the device id reaches topics but has no pattern",
                  hint: "add 'pattern:' under device.id, e.g. \"^[0-9A-Z]{13}$\"", at: d.idField.mark)
        }
        if let claim = d.claim, !["pattern", "site"].contains(claim.value) {
            error(.invalidValue, "unknown claim '\(claim.value)' of the device id",
                  hint: Suggestion.hint(for: claim.value, in: ["pattern", "site"])
                      ?? "use 'pattern' (ids the pattern matches) or 'site' (only ids the site assigns with 'pack:')", at: claim.mark)
        }
        var forms: [(name: String, take: DerivedForm.Take)] = []
        for form in d.forms {
            if ["root", "context", "id", "oprid", "value"].contains(form.name.value) {
                error(.duplicateName, "form '\(form.name.value)' shadows a built-in variable", at: form.name.mark)
            }
            switch form.take {
            case .first(let n), .last(let n):
                if n <= 0 { error(.invalidValue, "form '\(form.name.value)' must take at least 1 character", at: form.name.mark) }
            }
            forms.append((form.name.value, form.take))
        }
        var clockFormat: ClockFormat?
        if let f = d.clockFormat {
            clockFormat = ClockFormat(f.value)
            if clockFormat == nil {
                error(.invalidValue, "invalid clock format '\(f.value)'", hint: "use yyyy, MM, dd, HH, mm, ss and separators, e.g. yyyyMMddHHmmss", at: f.mark)
            }
        }
        var name: Template?
        if let n = d.name { name = checkTemplate(n, allowed: ["id", "context", "model", "manufacturer"] + forms.map(\.name), what: "the device name") }
        return CompiledDevice(
            idField: d.idField.value, pattern: pattern, forms: forms, clockField: d.clockField?.value, clockFormat: clockFormat,
            manufacturer: d.manufacturer, model: d.model, name: name)
    }

    func checkTemplate(_ source: Located<String>?, allowed: [String], what: String) -> Template? {
        guard let source else { return nil }
        do {
            let template = try Template(source.value)
            var ok = true
            for v in template.variables where !allowed.contains(v) {
                ok = false
                error(.unknownVariable, "unknown variable '{\(v)}' in \(what)",
                      hint: Suggestion.hint(for: v, in: allowed) ?? "variables here: \(allowed.map { "{\($0)}" }.joined(separator: ", "))",
                      at: source.mark)
            }
            return ok ? template : nil
        } catch {
            self.error(.unknownVariable, "invalid template in \(what): \(error.message)", hint: "variables are written {name}", at: source.mark)
            return nil
        }
    }

    // MARK: settings

    func checkSettings() -> [String: CompiledSetting] {
        var out: [String: CompiledSetting] = [:]
        for s in pack.settings {
            if s.allowed.isEmpty { error(.invalidValue, "setting '\(s.name.value)' allows no value", hint: "list what the device accepts under 'allowed'", at: s.name.mark) }
            if let d = s.defaultValue, !s.allowed.contains(where: { $0.value == d.value }) {
                error(.invalidValue, "default \(d.value) of setting '\(s.name.value)' is not an allowed value",
                      hint: "allowed: \(s.allowed.map { String($0.value) }.joined(separator: ", "))", at: d.mark)
            }
            out[s.name.value] = CompiledSetting(name: s.name.value, allowed: s.allowed.map(\.value), defaultValue: s.defaultValue?.value, unit: s.unit)
        }
        return out
    }

    // MARK: routes

    /// The tags a route may use: those declared by every topic its filter matches.
    func tags(for route: RouteRules) -> [String: TagType]? {
        let topics = pack.tags.filter { matches(filter: route.match.value, topic: $0.topic.value) }
        guard !topics.isEmpty else {
            error(.noMatchingTopic, "route '\(route.name.value)' matches no topic declared under 'tags'",
                  hint: Suggestion.hint(for: route.match.value, in: pack.tags.map(\.topic.value)) ?? "declare the topic and its tags under 'tags'",
                  at: route.match.mark)
            return nil
        }
        var result = Dictionary(topics[0].tags.map { ($0.name.value, $0.type) }, uniquingKeysWith: { a, _ in a })
        for t in topics.dropFirst() {
            let own = Dictionary(t.tags.map { ($0.name.value, $0.type) }, uniquingKeysWith: { a, _ in a })
            result = result.filter { own[$0.key] == $0.value }
        }
        return result
    }

    func matches(filter: String, topic: String) -> Bool {
        var m = TopicMatcher()
        m.insert(filter, value: 0)
        return m.match(topic) != nil
    }

    func checkTag(_ name: Located<String>, in tags: [String: TagType], route: RouteRules, extra: [String] = []) -> Bool {
        if tags[name.value] != nil || extra.contains(name.value) { return true }
        error(.unknownTag, "unknown tag '\(name.value)' for \(route.match.value) in route '\(route.name.value)'",
              hint: Suggestion.hint(for: name.value, in: Array(tags.keys) + extra)
                  ?? (Topic.isValidTopic(route.match.value) ? "declare it under 'tags: \(route.match.value):'"
                      : "a route with wildcards may use only tags that every topic it matches declares"),
              at: name.mark)
        return false
    }

    mutating func checkRoutes(device: CompiledDevice?, settings: [String: CompiledSetting]) -> [CompiledRoute] {
        var routes: [CompiledRoute] = []
        for tag in pack.tags where !Topic.isValidTopic(tag.topic.value) {
            error(.invalidFilter, "'\(tag.topic.value)' is not a valid topic", hint: "a declared topic has no wildcards", at: tag.topic.mark)
        }
        for (i, route) in pack.routes.enumerated() {
            guard Topic.isValidFilter(route.match.value) else {
                error(.invalidFilter, "'\(route.match.value)' is not a valid MQTT topic filter",
                      hint: "'+' stands for a whole level and '#' only at the end", at: route.match.mark)
                continue
            }
            for other in pack.routes[..<i] where TopicMatcher.overlap(other.match.value, route.match.value) {
                error(.overlappingRoutes, "route '\(route.name.value)' (\(route.match.value)) overlaps route '\(other.name.value)' (\(other.match.value))",
                      hint: "a message goes to exactly one route; make the filters disjoint", at: route.match.mark)
            }
            if let compiled = checkRoute(route, index: routes.count, device: device, settings: settings) {
                routes.append(compiled)
            }
        }
        return routes
    }

    func checkRoute(_ route: RouteRules, index: Int, device: CompiledDevice?, settings: [String: CompiledSetting]) -> CompiledRoute? {
        guard let tags = tags(for: route) else { return nil }
        var ok = true
        var slots: [String] = []
        let idField = pack.device.idField
        if tags[idField.value] == nil {
            ok = false
            error(.unknownTag, "the id field '\(idField.value)' is not a tag of \(route.match.value) (route '\(route.name.value)')",
                  hint: "declare it under 'tags: \(route.match.value):'", at: route.match.mark)
        }
        let idSlot = slots.slot(idField.value)
        var clockSlot: Int?
        if let clock = device?.clockField, tags[clock] != nil { clockSlot = slots.slot(clock) }

        var reassembly: CompiledReassembly?
        if let r = route.reassembly {
            for k in r.key { ok = checkTag(k, in: tags, route: route) && ok }
            ok = checkTag(r.completeField, in: tags, route: route) && ok
            if r.maxParts < 1 || r.maxBytes < 1 || r.maxAgeSeconds < 1 {
                ok = false
                error(.invalidValue, "reassembly bounds must be positive", hint: "max_parts, max_bytes and max_age_s", at: r.mark)
            }
            reassembly = CompiledReassembly(
                keySlots: r.key.map { slots.slot($0.value) }, completeSlot: slots.slot(r.completeField.value),
                completeRaw: JSONWriter.quoted(r.completeValue.value), maxParts: r.maxParts, maxBytes: r.maxBytes,
                maxAgeMillis: Int64(r.maxAgeSeconds) * 1000)
        }
        var ignored: Set<String> = []
        if let ignore = route.allZeroIgnore {
            for tag in ignore {
                ok = checkTag(tag, in: tags, route: route) && ok
                ignored.insert(tag.value)
            }
        }
        var duplicateKey: [DuplicateKeyPart]?
        if let d = route.duplicate {
            if d.key.isEmpty { ok = false; error(.missingKey, "'duplicate' needs a 'key' list", hint: "e.g. key: [topic, id, time]", at: d.mark) }
            if d.memory.value < 1 { ok = false; error(.invalidValue, "duplicate 'memory' must be at least 1", at: d.memory.mark) }
            var parts: [DuplicateKeyPart] = []
            for k in d.key {
                if k.value == "topic" { parts.append(.topic); continue }
                ok = checkTag(k, in: tags, route: route, extra: ["topic"]) && ok
                parts.append(.slot(slots.slot(k.value)))
            }
            duplicateKey = parts
        }
        let topic = checkTemplate(route.topic, allowed: deviceVariables(device), what: "the topic of route '\(route.name.value)'")
        if let topic, topic.variables.isEmpty || !topic.variables.contains("id") {
            error(.unknownVariable, "the topic of route '\(route.name.value)' does not name the device",
                  hint: "include {id} (or a form of it) so each meter gets its own topic", at: route.topic.mark)
        }
        if let topic, !Topic.isValidTopic(topic.render { _ in "x" }) {
            error(.invalidFilter, "the topic of route '\(route.name.value)' contains a wildcard", at: route.topic.mark)
        }
        if let setting = route.intervalSetting, settings[setting.value] == nil {
            ok = false
            error(.unknownReference, "unknown setting '\(setting.value)'",
                  hint: Suggestion.hint(for: setting.value, in: settings.keys) ?? "declare it under 'settings'", at: setting.mark)
        }

        var fields: [CompiledField] = []
        var seen: [String: Mark] = [:]
        var groupNames: [String] = []
        let all: [(group: Int, FieldRules)] = route.fields.map { (-1, $0) }
            + route.groups.enumerated().flatMap { (g, group) in group.fields.map { (g, $0) } }
        for group in route.groups {
            if groupNames.contains(group.name.value) { error(.duplicateName, "group '\(group.name.value)' declared twice", at: group.name.mark) }
            groupNames.append(group.name.value)
        }
        let stateClasses = HomeAssistant.stateClasses
        // Where each tag's unit is written, for a caret on a unit Home Assistant rejects.
        var unitMarks: [String: Mark] = [:]
        for topic in pack.tags where matches(filter: route.match.value, topic: topic.topic.value) {
            for t in topic.tags where unitMarks[t.name.value] == nil { unitMarks[t.name.value] = t.typeMark }
        }
        for (group, f) in all {
            if let first = seen[f.name.value] {
                ok = false
                error(.duplicateName, "output field '\(f.name.value)' declared twice in route '\(route.name.value)'",
                      hint: "first declared at line \(first.line)", at: f.name.mark)
            }
            seen[f.name.value] = f.name.mark
            guard checkTag(f.from, in: tags, route: route) else { ok = false; continue }
            let type = tags[f.from.value]!
            var unit = ""
            if case .number(let u) = type { unit = u }
            if let declared = f.unit, declared.value != unit {
                ok = false
                error(.unitMismatch, "field '\(f.name.value)' says unit '\(declared.value)' but tag '\(f.from.value)' is in '\(unit)'",
                      hint: "values leave as the meter wrote them; drop 'unit:' to inherit '\(unit)'", at: declared.mark)
            }
            if let sc = f.stateClass, !stateClasses.contains(sc.value) {
                error(.homeAssistant, "unknown state_class '\(sc.value)' for field '\(f.name.value)'",
                      hint: Suggestion.hint(for: sc.value, in: stateClasses) ?? "use one of \(stateClasses.joined(separator: ", "))", at: sc.mark)
            }
            if let p = f.precision, !(0...10).contains(p.value) {
                error(.invalidValue, "precision \(p.value) of field '\(f.name.value)' is out of range", hint: "use 0 to 10 decimals", at: p.mark)
            }
            let isNumber: Bool = if case .number = type { true } else { false }
            if let g = f.counterGuard, !isNumber {
                ok = false
                error(.invalidValue, "field '\(f.name.value)' has a counter 'guard' but tag '\(f.from.value)' is not a number",
                      hint: "a guard watches a total that only goes up, such as an energy counter", at: g.mark)
            }
            var mask: FieldMask?
            if let m = f.mask {
                mask = checkMask(m, f, isNumber: isNumber)
                if mask == nil { ok = false }
            } else {
                checkHomeAssistant(f, isNumber: isNumber, unit: unit, unitMark: f.unit?.mark ?? unitMarks[f.from.value])
            }
            fields.append(CompiledField(
                name: f.name.value, slot: slots.slot(f.from.value), group: group, unit: mask == nil ? unit : "",
                label: f.label ?? String(f.name.value.map { $0 == "_" ? " " : $0 }).capitalizedFirst,
                deviceClass: f.deviceClass?.value, stateClass: f.stateClass?.value, precision: f.precision?.value,
                entity: f.entity ?? (isNumber || mask != nil), counterGuard: f.counterGuard, mask: mask))
        }
        guard ok, let topic else { return nil }
        let slotTypes: [SlotType] = slots.map { name in
            switch tags[name] {
            case .text?: .text
            case .number?: .number
            case nil: .any
            }
        }
        return CompiledRoute(
            index: index, name: route.name.value, filter: route.match.value,
            keyTable: KeyTable(slots: slots, ignoredForZero: ignored), slotNames: slots, slotTypes: slotTypes,
            idSlot: idSlot, clockSlot: clockSlot, reassembly: reassembly, allZero: route.allZeroIgnore != nil,
            duplicateKey: duplicateKey, duplicateMemory: route.duplicate?.memory.value ?? 0, topic: topic, fields: fields,
            groups: groupNames, intervalSetting: route.intervalSetting?.value, intervalSeconds: route.intervalSeconds)
    }

    // MARK: Home Assistant

    /// A field against Home Assistant's sensor semantics (`HomeAssistant`'s
    /// tables): a known device class, a unit that class allows, a state class
    /// that class allows. The caret goes to the value that is wrong: a unit
    /// Home Assistant knows for no class is the unit's fault; a known unit the
    /// class does not take is the class's.
    func checkHomeAssistant(_ f: FieldRules, isNumber: Bool, unit: String, unitMark: Mark?) {
        let field = f.name.value
        var sensorClass: HomeAssistant.SensorClass?
        if let dc = f.deviceClass {
            if let c = HomeAssistant.sensorClass(dc.value) {
                sensorClass = c
            } else {
                let isBinary = HomeAssistant.binarySensorClasses.contains(dc.value)
                error(.homeAssistant, "unknown device_class '\(dc.value)' for field '\(field)'",
                      hint: Suggestion.hint(for: dc.value, in: HomeAssistant.sensorClasses.map(\.name))
                          ?? (isBinary ? "'\(dc.value)' is a binary_sensor device class; a field becomes a sensor"
                              : "Home Assistant \(HomeAssistant.version) has no such sensor device class"),
                      at: dc.mark)
            }
        }
        // A class that does not fit the value is one mistake: its state class is not checked against it too.
        var classFits = true
        if let c = sensorClass, let dc = f.deviceClass {
            classFits = false
            let takes = c.units.map { units in units.map { $0.isEmpty ? "no unit" : $0 }.joined(separator: ", ") } ?? "any unit"
            if c.numeric && !isNumber {
                error(.homeAssistant, "device_class '\(c.name)' needs a number, but tag '\(f.from.value)' is text",
                      hint: "remove device_class or map a number tag", at: dc.mark)
            } else if !c.numeric && isNumber {
                error(.homeAssistant, "device_class '\(c.name)' is for text values, but tag '\(f.from.value)' is a number",
                      hint: "remove device_class or map a text tag", at: dc.mark)
            } else if !c.allows(unit: unit) {
                if !unit.isEmpty && !HomeAssistant.knownUnits.contains(unit), let unitMark {
                    error(.homeAssistant, "unit '\(unit)' of tag '\(f.from.value)' is not a unit of device_class '\(c.name)'",
                          hint: Suggestion.hint(for: unit, in: (c.units ?? []).filter { !$0.isEmpty }) ?? "'\(c.name)' takes \(takes)",
                          at: unitMark)
                } else {
                    let others = unit.isEmpty ? [] : HomeAssistant.classes(allowing: unit)
                    error(.homeAssistant, unit.isEmpty
                              ? "device_class '\(c.name)' needs a unit, but tag '\(f.from.value)' has none"
                              : "device_class '\(c.name)' does not take unit '\(unit)' (tag '\(f.from.value)')",
                          hint: others.isEmpty ? "'\(c.name)' takes \(takes)"
                              : "'\(unit)' is a unit of \(others.map { "'\($0)'" }.joined(separator: ", ")); '\(c.name)' takes \(takes)",
                          at: dc.mark)
                }
            } else {
                classFits = true
            }
        }
        if let sc = f.stateClass, classFits, HomeAssistant.stateClasses.contains(sc.value) {
            if !isNumber {
                error(.homeAssistant, "state_class '\(sc.value)' needs a number, but tag '\(f.from.value)' is text",
                      hint: "remove state_class", at: sc.mark)
            } else if let c = sensorClass, !c.stateClasses.contains(sc.value) {
                error(.homeAssistant, "state_class '\(sc.value)' is not allowed with device_class '\(c.name)'",
                      hint: c.stateClasses.isEmpty ? "'\(c.name)' takes no state_class; remove it"
                          : "'\(c.name)' allows \(c.stateClasses.map { "'\($0)'" }.joined(separator: ", "))",
                      at: sc.mark)
            }
        }
    }

    // MARK: commands

    func checkCommands(device: CompiledDevice?, settings: [String: CompiledSetting])
        -> ((field: String, length: Int)?, [CompiledCommand], [String: CompiledReply]) {
        var commands: [CompiledCommand] = []
        var replyRules: [String: [CommandRules]] = [:]
        let operation = pack.operationID
        if let op = operation, op.length.value < 1 {
            error(.invalidValue, "operation id length must be positive", at: op.length.mark)
        }
        let variables = deviceVariables(device) + ["oprid", "value"]
        for c in pack.commands {
            let topic = checkTemplate(c.topic, allowed: variables.filter { $0 != "oprid" && $0 != "value" }, what: "the topic of command '\(c.name.value)'")
            var payload: [(key: String, value: Template)] = []
            for (key, value) in c.payload {
                guard let t = checkTemplate(value, allowed: variables, what: "field '\(key)' of command '\(c.name.value)'") else { continue }
                if t.variables.contains("oprid") && operation == nil {
                    error(.unknownVariable, "command '\(c.name.value)' uses {oprid} but the pack has no 'commands.operation_id'",
                          hint: "add operation_id: { field: oprid, length: 32 }", at: value.mark)
                }
                payload.append((key, t))
            }
            var value: CompiledCommand.Value = .none
            var request: CompiledRequest?
            switch c.value {
            case .setting(let s)?:
                if settings[s.value] == nil {
                    error(.unknownReference, "unknown setting '\(s.value)' in command '\(c.name.value)'",
                          hint: Suggestion.hint(for: s.value, in: settings.keys) ?? "declare it under 'settings'", at: s.mark)
                }
                value = .setting(s.value)
            case .clock(let f)?:
                if let format = ClockFormat(f.value) { value = .clock(format) }
                else { error(.invalidValue, "invalid clock format '\(f.value)'", hint: "e.g. yyyyMMddHHmmss", at: f.mark) }
            case .request(let r)?:
                value = .request
                request = checkRequest(r, command: c)
            case nil: break
            }
            if !Topic.isValidTopic(c.replyTopic.value) {
                error(.invalidFilter, "'\(c.replyTopic.value)' is not a valid reply topic", at: c.replyTopic.mark)
            }
            if c.success.isEmpty { error(.missingKey, "command '\(c.name.value)' has no success condition", at: c.mark) }
            replyRules[c.replyTopic.value, default: []].append(c)
            if let topic { commands.append(CompiledCommand(name: c.name.value, topic: topic, payload: payload, value: value, replyTopic: c.replyTopic.value, request: request)) }
        }
        var replies: [String: CompiledReply] = [:]
        if let operation {
            for (topic, rules) in replyRules {
                var slots = [pack.device.idField.value, operation.field.value]
                let first = rules[0]
                let success = first.success.map { (slot: slots.slot($0.field.value), value: $0.value) }
                let message = first.messageField.map { slots.slot($0.value) }
                for other in rules.dropFirst() where other.success.map(\.value) != first.success.map(\.value) {
                    error(.invalidValue, "commands sharing reply topic '\(topic)' must share the success condition", at: other.mark)
                }
                replies[topic] = CompiledReply(
                    topic: topic, keyTable: KeyTable(slots: slots, ignoredForZero: []), idSlot: 0, operationSlot: 1,
                    success: success, messageSlot: message, commands: rules.map(\.name.value))
            }
        }
        return (operation.map { ($0.field.value, $0.length.value) }, commands, replies)
    }

    // MARK: site

    func checkSite(device: CompiledDevice?, routes: [CompiledRoute], settings: [String: CompiledSetting]) -> CompiledSite? {
        // The groups the pack declares, not those of the routes that compiled:
        // a route with an error must not turn every group a site enables into
        // a second, false error (no cascades).
        let allGroups = Array(Set(pack.routes.flatMap { $0.groups.map(\.name.value) })).sorted()
        func checkGroups(_ groups: [Located<String>]?) -> Set<String> {
            var out: Set<String> = []
            for g in groups ?? [] {
                if allGroups.contains(g.value) { out.insert(g.value); continue }
                siteContext.error(.unknownReference, "unknown group '\(g.value)'",
                                  hint: Suggestion.hint(for: g.value, in: allGroups)
                                      ?? (allGroups.isEmpty ? "pack '\(pack.name.value)' declares no groups"
                                          : "groups of pack '\(pack.name.value)': \(allGroups.joined(separator: ", "))"),
                                  at: g.mark)
            }
            return out
        }
        func checkSettings(_ meter: MeterConfig) {
            for (name, value) in meter.settings.sorted(by: { $0.key < $1.key }) {
                guard let setting = settings[name] else {
                    siteContext.error(.unknownReference, "unknown setting '\(name)'",
                                      hint: Suggestion.hint(for: name, in: settings.keys)
                                          ?? (settings.isEmpty ? "pack '\(pack.name.value)' declares no settings"
                                              : "settings of pack '\(pack.name.value)': \(settings.keys.sorted().joined(separator: ", "))"),
                                      at: value.mark)
                    continue
                }
                if !setting.allowed.contains(value.value) {
                    siteContext.error(.settingNotAllowed, "\(name) \(value.value) is not allowed",
                                      hint: "allowed: \(setting.allowed.map(String.init).joined(separator: ", "))\(setting.unit.map { " (\($0))" } ?? "")",
                                      at: value.mark)
                }
            }
        }
        func checkID(_ id: String, _ mark: Mark) {
            if let device, !device.isValid(Array(id.utf8)) {
                siteContext.error(.invalidName, "'\(id)' is not a valid meter id",
                                  hint: device.pattern.map { "ids match \($0.source)" }, at: mark)
            }
        }
        let defaultGroups = checkGroups(site.defaults.groups)
        checkSettings(site.defaults)
        var meterGroups: [String: Set<String>] = [:]
        var contexts: [String: String] = [:]
        for (id, meter) in site.meters.sorted(by: { $0.key < $1.key }) {
            checkID(id, site.meterMarks[id] ?? Mark(line: 1, column: 1))
            if meter.groups != nil { meterGroups[id] = checkGroups(meter.groups) }
            if let context = meter.context { contexts[id] = context.value }
            checkSettings(meter)
        }
        for e in site.exclude { checkID(e.value, e.mark) }
        let root = site.rootTopic
        var compiled = CompiledSite(
            config: site, root: root, statusTopic: site.statusTopic ?? "\(root)/status" + (site.instance.map { "/\($0)" } ?? ""),
            exclude: Set(site.exclude.map(\.value)), defaultGroups: defaultGroups, meterGroups: meterGroups, contexts: contexts)
        compiled.loops = checkLoops(device: device)
        return compiled
    }
}

extension String {
    var capitalizedFirst: String { prefix(1).uppercased() + dropFirst() }
}

extension [String] {
    /// The slot of field `name` in a route's or reply's key table: its index,
    /// appended when the table does not hold it yet.
    fileprivate mutating func slot(_ name: String) -> Int {
        if let i = firstIndex(of: name) { return i }
        append(name)
        return count - 1
    }
}
