/// Commands and replies over every pack: what a config sender asks, answered
/// by the pack that runs the meter.
extension ProgramSet {
    /// Every pack's command names, each once, in pack order.
    public var commandNames: [String] {
        var seen: Set<String> = []
        return programs.flatMap(\.commandNames).filter { seen.insert($0).inserted }
    }

    /// The command names of meter `id`'s pack.
    public func commandNames(for id: String) -> [String] { program(for: id)?.commandNames ?? [] }

    /// Whether command `name` sets the clock in any pack.
    public func isClockCommand(_ name: String) -> Bool { programs.contains { $0.isClockCommand(name) } }

    /// The operation id length (every pack that has one; the first wins).
    public var operationIDLength: Int? { programs.lazy.compactMap(\.operationIDLength).first }

    /// The settings a command sends to meter `id`, from its pack.
    public func effectiveSettings(for id: String) -> [(name: String, value: Int)] {
        program(for: id)?.effectiveSettings(for: id) ?? []
    }

    /// Command `name` for meter `id`, rendered by the meter's pack; nil when
    /// no pack runs the meter or its pack has no such command.
    public func renderCommand(_ name: String, for id: String, operationID: String, now: Instant) -> CommandMessage? {
        program(for: id)?.renderCommand(name, for: id, operationID: operationID, now: now)
    }

    /// A reply, parsed by the first pack that has its topic.
    public func parseReply(topic: String, payload: [UInt8]) -> CommandReply? {
        for p in programs where p.replyTopics.contains(topic) {
            if let reply = p.parseReply(topic: topic, payload: payload) { return reply }
        }
        return nil
    }

    /// Every pack's discovery topic filter, each once: what a config sender
    /// subscribes to and the proxy's ledger reads back.
    public var discoverySubscriptions: [String] {
        var seen: Set<String> = []
        return programs.compactMap(\.discoverySubscription).filter { seen.insert($0).inserted }
    }

    /// The Home Assistant device node of meter `id` (`<pack>_<id>`), as the proxy names it.
    public func homeAssistantNode(for id: String) -> String {
        Program.haSafe("\((program(for: id) ?? first).packName)_\(id)")
    }
}
