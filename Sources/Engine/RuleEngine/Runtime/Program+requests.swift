/// Commands on demand (`value: { request: … }`): what a config sender
/// subscribes to on the central broker, how a request names its meter and
/// value, the command it becomes, where the confirmed state goes, and the
/// Home Assistant `switch` that sends it.
extension Program {
    /// A request on the central broker, recognised by its topic.
    public struct Request: Sendable, Equatable {
        public var command: String
        public var deviceID: String
    }

    /// The names of the commands sent on demand.
    public var requestCommandNames: [String] { commands.filter { $0.request != nil }.map(\.name) }

    /// The topic filters of the requests (`kpm33b/+/relay/set`), to subscribe to on the central broker.
    public var requestSubscriptions: [String] {
        commands.compactMap { c in c.request.map { r in r.topic.render { $0 == "root" ? site.root : "+" } } }
    }

    /// The command and meter a request topic names; nil when no request topic matches.
    /// The id is the topic's level where the template has `{id}` (not checked here).
    public func parseRequestTopic(_ topic: String) -> Request? { match(topic) { $0.topic } }

    /// The command and meter a request's state topic names (`kpm33b/<id>/relay`); nil when none matches.
    public func parseRequestStateTopic(_ topic: String) -> Request? { match(topic) { $0.state } }

    /// The first request command whose topic (`template`) names `topic`, with the level where it has `{id}`.
    private func match(_ topic: String, _ template: (CompiledRequest) -> Template) -> Request? {
        let levels = topic.split(separator: "/", omittingEmptySubsequences: false)
        for c in commands {
            guard let r = c.request else { continue }
            let pattern = template(r).render { $0 == "root" ? site.root : "\u{1}" }.split(separator: "/", omittingEmptySubsequences: false)
            guard pattern.count == levels.count else { continue }
            var id: Substring?
            var matches = true
            for (p, l) in zip(pattern, levels) {
                if p == "\u{1}" { id = l } else if p != l { matches = false; break }
            }
            if matches, let id { return Request(command: c.name, deviceID: String(id)) }
        }
        return nil
    }

    /// The request payloads command `name` accepts (`["ON", "OFF"]`).
    public func requestValues(_ name: String) -> [String] {
        commands.first { $0.name == name }?.request?.values.map(\.key) ?? []
    }

    /// Command `name` for meter `id` with the value request payload `key` stands
    /// for; nil for an unknown command, key or meter id.
    public func renderRequest(_ name: String, for id: String, key: String, operationID: String) -> CommandMessage? {
        guard let command = commands.first(where: { $0.name == name }), let r = command.request, isValidDeviceID(id),
              let value = r.values.first(where: { $0.key == key })?.value else { return nil }
        var w = JSONWriter()
        w.beginObject()
        for (field, template) in command.payload { w.field(field, render(template, id: id, extra: ["oprid": operationID, "value": value])) }
        w.endObject()
        return CommandMessage(command: name, deviceID: id, operationID: operationID, value: key,
                              topic: render(command.topic, id: id), payload: w.bytes)
    }

    /// Where a request for command `name` of meter `id` is published (Home Assistant's `command_topic`).
    public func requestTopic(_ name: String, for id: String) -> String? {
        commands.first { $0.name == name }?.request.map { render($0.topic, id: id) }
    }

    /// Where the confirmed state of command `name` for meter `id` goes (retained).
    public func requestStateTopic(_ name: String, for id: String) -> String? {
        commands.first { $0.name == name }?.request.map { render($0.state, id: id) }
    }

    /// One Home Assistant `switch` per request command of meter `id` (a
    /// component of its device, or an entity config): it publishes on the
    /// request topic and shows the confirmed state.
    func switchComponents(for id: String, node: String) -> [(object: String, platform: String, body: [UInt8])] {
        commands.compactMap { c -> (object: String, platform: String, body: [UInt8])? in
            guard let r = c.request else { return nil }
            let object = Program.haSafe(c.name)
            let on = r.values.first?.key ?? "ON", off = r.values.dropFirst().first?.key ?? "OFF"
            var w = JSONWriter(capacity: 512)
            w.field("name", r.name)
            w.field("unique_id", "\(node)_\(object)")
            w.field("default_entity_id", "switch.\(node)_\(object)".lowercased())
            w.field("command_topic", render(r.topic, id: id))
            w.field("state_topic", render(r.state, id: id))
            w.field("payload_on", on)
            w.field("payload_off", off)
            w.field("state_on", on)
            w.field("state_off", off)
            w.key("retain")
            w.bool(false)
            return (object, "switch", w.bytes)
        }
    }
}

extension ProgramSet {
    /// Every pack's request filters, each once.
    public var requestSubscriptions: [String] {
        var seen: Set<String> = []
        return programs.flatMap(\.requestSubscriptions).filter { seen.insert($0).inserted }
    }

    /// The first pack whose request topics name `topic`.
    public func parseRequestTopic(_ topic: String) -> Program.Request? {
        programs.lazy.compactMap { $0.parseRequestTopic(topic) }.first
    }

    /// The first pack whose request state topics name `topic`.
    public func parseRequestStateTopic(_ topic: String) -> Program.Request? {
        programs.lazy.compactMap { $0.parseRequestStateTopic(topic) }.first
    }
}
