import JSON

/// The hand-over between instances, per meter: the instance that announces
/// a meter (its owner) says on the meter's own retained topic
/// (`<root>/<id>/silent`) when it has not heard the meter for longer than
/// the meter's allowed silence — `{"instance":"a","last_seen":"2026-01-12T16:39:00Z"}`
/// (`last_seen` absent: not since the owner started) — and clears it (an
/// empty retained payload) when it hears the meter again or no longer owns
/// it. Another instance that hears the meter takes it over then
/// (`ProxyCore.mayAnnounce`). Published on change only, with the status.
public struct MeterSilence: Sendable, Equatable {
    /// The owner's instance (nil: a proxy without one).
    public var instance: String?
    /// When the owner last heard the meter (ISO 8601, UTC), if since it started.
    public var lastSeen: String?

    public init(instance: String?, lastSeen: String?) {
        self.instance = instance
        self.lastSeen = lastSeen
    }

    public static func topic(root: String, id: String) -> String { "\(root)/\(id)/silent" }
    /// What the proxy subscribes to on the central broker.
    public static func filter(root: String) -> String { "\(root)/+/silent" }

    /// The meter of a topic on `filter(root:)`, nil for any other topic.
    public static func id(inTopic topic: String, root: String) -> String? {
        guard topic.hasPrefix(root + "/"), topic.hasSuffix("/silent") else { return nil }
        let id = topic.dropFirst(root.count + 1).dropLast("/silent".count)
        return id.isEmpty || id.contains("/") ? nil : String(id)
    }

    public var payload: [UInt8] {
        var doc = JSONObject()
        doc["instance"] = instance.map { .string($0) } ?? .null
        if let lastSeen { doc["last_seen"] = .string(lastSeen) }
        return JSONValue.object(doc).serialized()
    }

    /// nil for an empty payload (the owner hears the meter) or one that is not a declaration.
    public init?(payload: [UInt8]) {
        guard !payload.isEmpty, let doc = (try? JSONValue.parse(payload))?.objectValue, doc["instance"] != nil else { return nil }
        instance = doc["instance"]?.stringValue
        lastSeen = doc["last_seen"]?.stringValue
    }
}
