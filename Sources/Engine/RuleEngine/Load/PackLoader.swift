import YAML

/// Reads `pack.yaml` into a `RulePack`, collecting every structural problem.
enum PackLoader {
    static func load(bytes: [UInt8], file: String) -> (RulePack?, [Diagnostic]) {
        let ctx = LoadContext(file: file)
        guard let root = ctx.parse(bytes) else {
            if ctx.diagnostics.isEmpty { ctx.error(.missingKey, "the rule pack is empty", hint: "start with 'pack: NAME'", at: Mark(line: 1, column: 1)) }
            return (nil, ctx.diagnostics)
        }
        guard let top = ctx.mapping(root, "the rule pack", known: ["pack", "description", "device", "tags", "routes", "discovery", "settings", "commands"]) else {
            return (nil, ctx.diagnostics)
        }
        let name = top.string("pack", required: true) ?? Located("?", top.mark)
        let device = top.required("device").flatMap { readDevice($0, ctx) }
        let tags = top.required("tags").map { readTags($0, ctx) } ?? []
        let routes = top.required("routes").map { readRoutes($0, ctx) } ?? []
        var discoveryTopic: Located<String>?
        if let node = top.node("discovery"), let m = ctx.mapping(node, "'discovery'", known: ["topic"]) {
            discoveryTopic = m.string("topic", required: true)
        }
        let settings = top.node("settings").map { readSettings($0, ctx) } ?? []
        var operationID: OperationIDRules?
        var commands: [CommandRules] = []
        if let node = top.node("commands"), let entries = ctx.namedEntries(node, "'commands'") {
            for entry in entries {
                if entry.key.value == "operation_id" {
                    if let m = ctx.mapping(entry.value, "'operation_id'", known: ["field", "length"]),
                       let field = m.string("field", required: true), let length = m.int("length", required: true) {
                        operationID = OperationIDRules(field: field, length: length)
                    }
                } else if let command = readCommand(entry, ctx) {
                    commands.append(command)
                }
            }
        }
        guard let device else { return (nil, ctx.diagnostics) }
        let pack = RulePack(
            file: file, name: name, description: top.string("description")?.value, device: device, tags: tags,
            routes: routes, discoveryTopic: discoveryTopic, settings: settings, operationID: operationID, commands: commands)
        return (pack, ctx.diagnostics)
    }

    static func readDevice(_ node: YAMLNode, _ ctx: LoadContext) -> DeviceRules? {
        guard let m = ctx.mapping(node, "'device'", known: ["id", "forms", "clock", "manufacturer", "model", "name", "loops"]) else { return nil }
        guard let idNode = m.required("id"), let id = ctx.mapping(idNode, "'device.id'", known: ["field", "pattern", "claim"]) else { return nil }
        guard let field = id.string("field", required: true) else { return nil }
        var forms: [DerivedForm] = []
        if let node = m.node("forms"), let entries = ctx.namedEntries(node, "'device.forms'") {
            for entry in entries {
                guard let f = ctx.mapping(entry.value, "form '\(entry.key.value)'", known: ["first", "last"]) else { continue }
                let name = Located(entry.key.value, entry.key.mark)
                if let n = f.int("last") {
                    forms.append(DerivedForm(name: name, take: .last(n.value)))
                } else if let n = f.int("first") {
                    forms.append(DerivedForm(name: name, take: .first(n.value)))
                } else {
                    ctx.error(.missingKey, "form '\(entry.key.value)' needs 'first' or 'last'", hint: "e.g. { last: 8 }", at: entry.key.mark)
                }
            }
        }
        var clockField: Located<String>?, clockFormat: Located<String>?
        if let node = m.node("clock"), let c = ctx.mapping(node, "'device.clock'", known: ["field", "format"]) {
            clockField = c.string("field", required: true)
            clockFormat = c.string("format", required: true)
        }
        return DeviceRules(
            idField: field, pattern: id.string("pattern"), claim: id.string("claim"), forms: forms, clockField: clockField, clockFormat: clockFormat,
            manufacturer: m.string("manufacturer")?.value ?? "", model: m.string("model")?.value ?? "", name: m.string("name"),
            loops: m.int("loops"))
    }

    static func readTags(_ node: YAMLNode, _ ctx: LoadContext) -> [TopicTags] {
        guard let topics = ctx.namedEntries(node, "'tags'") else { return [] }
        return topics.compactMap { topic in
            guard let entries = ctx.namedEntries(topic.value, "tags of '\(topic.key.value)'") else { return nil }
            let tags: [(name: Located<String>, type: TagType, typeMark: Mark)] = entries.compactMap { entry in
                guard let unit = ctx.string(entry.value, "the type of tag '\(entry.key.value)'") else { return nil }
                let type: TagType = unit.value == "text" ? .text : .number(unit: unit.value == "number" ? "" : unit.value)
                return (Located(entry.key.value, entry.key.mark), type, unit.mark)
            }
            return TopicTags(topic: Located(topic.key.value, topic.key.mark), tags: tags)
        }
    }

    static func readRoutes(_ node: YAMLNode, _ ctx: LoadContext) -> [RouteRules] {
        guard let entries = ctx.namedEntries(node, "'routes'") else { return [] }
        return entries.compactMap { readRoute($0, ctx) }
    }

    static func readRoute(_ entry: YAMLEntry, _ ctx: LoadContext) -> RouteRules? {
        let what = "route '\(entry.key.value)'"
        guard let m = ctx.mapping(entry.value, what, known: ["match", "interval", "reassemble", "drop", "publish"]) else { return nil }
        let match = m.string("match", required: true)
        var intervalSetting: Located<String>?
        var intervalSeconds = 1
        if let node = m.node("interval"), let i = ctx.mapping(node, "'interval' of \(what)", known: ["setting", "seconds"]) {
            intervalSetting = i.string("setting", required: true)
            intervalSeconds = i.int("seconds")?.value ?? 1
        }
        var reassembly: ReassemblyRules?
        if let node = m.node("reassemble"),
           let r = ctx.mapping(node, "'reassemble' of \(what)", known: ["key", "complete_when", "max_parts", "max_bytes", "max_age_s"]) {
            let key = r.stringList("key") ?? []
            if key.isEmpty { ctx.error(.missingKey, "'reassemble' needs a 'key' list of the fields all parts share", hint: "e.g. key: [id, time]", at: r.mark) }
            var completeField: Located<String>?, completeValue: Located<String>?
            if let c = r.required("complete_when") {
                if case .mapping(let cs, _) = c, cs.count == 1, let value = ctx.string(cs[0].value, "the value of 'complete_when'") {
                    completeField = Located(cs[0].key.value, cs[0].key.mark)
                    completeValue = value
                } else {
                    ctx.error(.wrongType, "'complete_when' must be one 'field: value' pair", hint: "e.g. complete_when: { last_part: \"1\" }", at: c.mark)
                }
            }
            if let completeField, let completeValue {
                reassembly = ReassemblyRules(
                    key: key, completeField: completeField, completeValue: completeValue,
                    maxParts: r.int("max_parts")?.value ?? 16, maxBytes: r.int("max_bytes")?.value ?? 65536,
                    maxAgeSeconds: r.int("max_age_s")?.value ?? 60, mark: r.mark)
            }
        }
        var allZero: [Located<String>]?
        var duplicate: DuplicateRules?
        if let node = m.node("drop"), let d = ctx.mapping(node, "'drop' of \(what)", known: ["all_zero", "duplicate"]) {
            if let z = d.node("all_zero"), let zm = ctx.mapping(z, "'all_zero'", known: ["ignore"]) {
                allZero = zm.stringList("ignore") ?? []
            }
            if let node = d.node("duplicate"), let dm = ctx.mapping(node, "'duplicate'", known: ["key", "memory"]) {
                duplicate = DuplicateRules(key: dm.stringList("key") ?? [], memory: dm.int("memory") ?? Located(10000, dm.mark), mark: dm.mark)
            }
        }
        guard let publish = m.required("publish"),
              let p = ctx.mapping(publish, "'publish' of \(what)", known: ["topic", "fields", "groups"]) else { return nil }
        let topic = p.string("topic", required: true)
        let fields = p.required("fields").map { readFields($0, ctx) } ?? []
        var groups: [(name: Located<String>, fields: [FieldRules])] = []
        if let node = p.node("groups"), let entries = ctx.namedEntries(node, "'groups'") {
            for g in entries { groups.append((Located(g.key.value, g.key.mark), readFields(g.value, ctx))) }
        }
        guard let match, let topic else { return nil }
        return RouteRules(
            name: Located(entry.key.value, entry.key.mark), match: match, intervalSetting: intervalSetting,
            intervalSeconds: intervalSeconds, reassembly: reassembly, allZeroIgnore: allZero, duplicate: duplicate,
            topic: topic, fields: fields, groups: groups)
    }

    static let fieldKeys = ["from", "unit", "name", "device_class", "state_class", "precision", "entity", "guard", "mask"]

    /// Fields are a list of one-entry mappings so that their order is explicit:
    /// `- name: tag` or `- name: { from: tag, unit: …, … }`.
    static func readFields(_ node: YAMLNode, _ ctx: LoadContext) -> [FieldRules] {
        guard case .sequence(let items, _) = node else {
            ctx.error(.wrongType, "fields must be a list of '- name: tag' entries, not a \(node.kindName)",
                      hint: "a list keeps the output order: '- power: TAG'", at: node.mark)
            return []
        }
        return items.compactMap { item -> FieldRules? in
            guard case .mapping(let entries, _) = item, entries.count == 1 else {
                ctx.error(.wrongType, "each field must be one 'name: tag' or 'name: { from: tag, … }' entry", at: item.mark)
                return nil
            }
            let entry = entries[0]
            let name = Located(entry.key.value, entry.key.mark)
            if case .scalar(let s) = entry.value {
                return FieldRules(name: name, from: Located(s.value, s.mark))
            }
            guard let f = ctx.mapping(entry.value, "field '\(entry.key.value)'", known: fieldKeys) else { return nil }
            guard let from = f.string("from", required: true) else { return nil }
            var field = FieldRules(
                name: name, from: from, unit: f.string("unit"), label: f.string("name")?.value,
                deviceClass: f.string("device_class"), stateClass: f.string("state_class"),
                precision: f.int("precision"), entity: f.bool("entity")?.value)
            if let node = f.node("guard") { field.counterGuard = readCounterGuard(node, field: entry.key.value, ctx) }
            if let node = f.node("mask"), let m = ctx.mapping(node, "'mask' of field '\(entry.key.value)'", known: ["part", "bit"]),
               let part = m.int("part", required: true), let bit = m.int("bit", required: true) {
                field.mask = MaskRules(part: part, bit: bit, mark: node.mark)
            }
            return field
        }
    }

    static func readCounterGuard(_ node: YAMLNode, field: String, _ ctx: LoadContext) -> CounterGuardRules? {
        guard let g = ctx.mapping(node, "'guard' of field '\(field)'", known: ["max_drop", "max_rise_per_hour", "accept_reset_after"]) else {
            return nil
        }
        var rules = CounterGuardRules(mark: node.mark)
        if let v = g.double("max_drop") {
            if v.value >= 0 { rules.maxDrop = v.value }
            else { ctx.error(.invalidValue, "'max_drop' must not be negative", hint: "the largest fall still taken as noise, in the field's unit; 0 allows none", at: v.mark) }
        }
        if let v = g.double("max_rise_per_hour") {
            if v.value > 0 { rules.maxRisePerHour = v.value }
            else { ctx.error(.invalidValue, "'max_rise_per_hour' must be greater than 0", hint: "the meter's rating: kWh per hour for an energy total", at: v.mark) }
        }
        if let v = g.int("accept_reset_after") {
            if v.value >= 1 { rules.acceptResetAfter = v.value }
            else { ctx.error(.invalidValue, "'accept_reset_after' must be at least 1", hint: "readings in a row that agree with each other make a reset real", at: v.mark) }
        }
        return rules
    }

    static func readSettings(_ node: YAMLNode, _ ctx: LoadContext) -> [SettingRules] {
        guard let entries = ctx.namedEntries(node, "'settings'") else { return [] }
        return entries.compactMap { entry in
            guard let m = ctx.mapping(entry.value, "setting '\(entry.key.value)'", known: ["allowed", "default", "unit"]) else { return nil }
            var allowed: [Located<Int>] = []
            if let node = m.required("allowed") {
                if case .sequence(let items, _) = node {
                    allowed = items.compactMap { ctx.int($0, "an allowed value") }
                } else {
                    ctx.error(.wrongType, "'allowed' must be a list of integers", at: node.mark)
                }
            }
            return SettingRules(name: Located(entry.key.value, entry.key.mark), allowed: allowed,
                                defaultValue: m.int("default"), unit: m.string("unit")?.value)
        }
    }

    static func readRequest(_ node: YAMLNode, _ what: String, _ ctx: LoadContext) -> RequestRules? {
        guard let r = ctx.mapping(node, "'request' of \(what)", known: ["topic", "state", "values", "name"]),
              let topic = r.string("topic", required: true), let state = r.string("state", required: true) else { return nil }
        var values: [(key: Located<String>, value: Located<String>)] = []
        if let v = r.required("values"), let entries = ctx.namedEntries(v, "'values' of the request of \(what)") {
            for e in entries {
                if let text = ctx.string(e.value, "the command value of '\(e.key.value)'") { values.append((Located(e.key.value, e.key.mark), text)) }
            }
        }
        return RequestRules(topic: topic, state: state, values: values, name: r.string("name")?.value, mark: r.mark)
    }

    static func readCommand(_ entry: YAMLEntry, _ ctx: LoadContext) -> CommandRules? {
        let what = "command '\(entry.key.value)'"
        guard let m = ctx.mapping(entry.value, what, known: ["topic", "payload", "value", "reply"]) else { return nil }
        let topic = m.string("topic", required: true)
        var payload: [(key: String, value: Located<String>)] = []
        if let node = m.required("payload"), let entries = ctx.namedEntries(node, "'payload' of \(what)") {
            for e in entries {
                if let v = ctx.string(e.value, "payload field '\(e.key.value)'") { payload.append((e.key.value, v)) }
            }
        }
        var value: CommandRules.Value?
        if let node = m.node("value"), let v = ctx.mapping(node, "'value' of \(what)", known: ["setting", "clock", "request"]) {
            if let s = v.string("setting") { value = .setting(s) }
            else if let c = v.string("clock") { value = .clock(c) }
            else if let r = v.node("request") { value = readRequest(r, what, ctx).map { .request($0) } }
            else { ctx.error(.missingKey, "'value' needs 'setting', 'clock' or 'request'", at: v.mark) }
        }
        guard let replyNode = m.required("reply"),
              let r = ctx.mapping(replyNode, "'reply' of \(what)", known: ["topic", "success", "message"]) else { return nil }
        let replyTopic = r.string("topic", required: true)
        var success: [(field: Located<String>, value: String)] = []
        if let node = r.required("success"), let entries = ctx.namedEntries(node, "'success'") {
            for e in entries {
                if let v = ctx.string(e.value, "the value of '\(e.key.value)'") { success.append((Located(e.key.value, e.key.mark), v.value)) }
            }
        }
        guard let topic, let replyTopic else { return nil }
        return CommandRules(
            name: Located(entry.key.value, entry.key.mark), topic: topic, payload: payload, value: value,
            replyTopic: replyTopic, success: success, messageField: r.string("message"), mark: m.mark)
    }
}
