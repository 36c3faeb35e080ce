/// A command rendered for one meter, ready to publish.
public struct CommandMessage: Sendable, Equatable {
    public var command: String
    public var deviceID: String
    public var operationID: String
    public var value: String?
    public var topic: String
    public var payload: [UInt8]
}

/// A meter's answer to a command, matched by operation id.
public struct CommandReply: Sendable, Equatable {
    public var topic: String
    public var deviceID: String?
    public var operationID: String
    public var success: Bool
    public var message: String?
    /// The commands that answer on this topic.
    public var commands: [String]
}

/// Configuration commands and their replies, from the pack's `commands`.
extension Program {
    /// The command names, in pack order.
    public var commandNames: [String] { commands.map(\.name) }

    /// The reply topics to subscribe to on the meters' broker.
    public var replyTopics: [String] { replies.keys.sorted() }

    /// The exact length of an operation id (the meter ignores any other), if the pack uses one.
    public var operationIDLength: Int? { operationID?.length }

    /// Whether the command sets the clock (its value is the current time).
    public func isClockCommand(_ name: String) -> Bool {
        if case .clock? = commands.first(where: { $0.name == name })?.value { return true }
        return false
    }

    /// The value of `setting` for meter `id`: the meter's own, else the site default, else the pack default.
    public func effectiveSetting(_ setting: String, for id: String) -> Int? {
        site.config.meter(id).settings[setting]?.value ?? settings[setting]?.defaultValue
    }

    /// Every setting a command sends to meter `id`, sorted by name: what a config sender digests.
    public func effectiveSettings(for id: String) -> [(name: String, value: Int)] {
        var names: Set<String> = []
        for c in commands { if case .setting(let s) = c.value { names.insert(s) } }
        return names.sorted().compactMap { name in effectiveSetting(name, for: id).map { (name, $0) } }
    }

    /// Renders command `name` for meter `id` with a caller-chosen operation id
    /// (randomness stays outside the engine). Nil for an unknown command or a
    /// setting without a value.
    public func renderCommand(_ name: String, for id: String, operationID: String, now: Instant) -> CommandMessage? {
        guard let command = commands.first(where: { $0.name == name }), isValidDeviceID(id) else { return nil }
        // A meter with several loops takes commands under its base id only.
        if let loop = site.loops[id], loop.index != 0 { return nil }
        var value: String?
        switch command.value {
        case .setting(let s):
            guard let v = effectiveSetting(s, for: id) else { return nil }
            value = String(v)
        case .clock(let format): value = format.render(now)
        case .none: value = nil
        case .request: return nil  // on demand only: `renderRequest`
        }
        var extra = ["oprid": operationID]
        if let value { extra["value"] = value }
        var w = JSONWriter()
        w.beginObject()
        for (key, template) in command.payload { w.field(key, render(template, id: id, extra: extra)) }
        w.endObject()
        return CommandMessage(command: name, deviceID: id, operationID: operationID, value: value,
                              topic: render(command.topic, id: id), payload: w.bytes)
    }

    /// Parses a reply; nil when the topic is not a reply topic, the payload is
    /// malformed, or it carries no operation id (such replies are ignored).
    public func parseReply(topic: String, payload: [UInt8]) -> CommandReply? {
        guard let reply = replies[topic] else { return nil }
        var slots = [FieldSlice](repeating: FieldSlice(), count: reply.keyTable.slotCount)
        return payload.withUnsafeBytes { bytes -> CommandReply? in
            let ok = slots.withUnsafeMutableBufferPointer { buffer -> Bool in
                (try? PayloadScanner.scan(bytes, table: reply.keyTable, slots: buffer)) != nil
            }
            guard ok else { return nil }
            func string(_ slot: Int) -> String? {
                let s = slots[slot]
                guard s.kind == .string else { return nil }
                return PayloadScanner.decodeString(UnsafeRawBufferPointer(rebasing: bytes[Int(s.start)..<Int(s.end)]))
            }
            guard let operation = string(reply.operationSlot) else { return nil }
            let success = reply.success.allSatisfy { string($0.slot) == $0.value }
            return CommandReply(topic: topic, deviceID: string(reply.idSlot), operationID: operation, success: success,
                                message: reply.messageSlot.flatMap(string), commands: reply.commands)
        }
    }
}
