/// A meter's announcement on its pack's discovery topic
/// (`kpm33b/discovery/<id>`, retained), as the proxy publishes it:
/// `{"id":"33B1225950027","manufacturer":"Compere","model":"KPM33B","pack":"kpm33b",
/// "topics":{"seconds":"kpm33b/33B1225950027/seconds",…},"clock_offset_s":-123456}`.
/// An empty retained payload withdraws the meter.
///
/// One type for the message: the engine writes it (`payload`); the services
/// read it with `DiscoveryMessage.parse` (in `Services`, over the JSON
/// adapter, which the pure engine does not import).
public struct DiscoveryMessage: Sendable, Equatable {
    /// One of the meter's clean topics: the route's name and the topic.
    public struct Route: Sendable, Equatable {
        public var name: String
        public var topic: String
        public init(name: String, topic: String) {
            self.name = name
            self.topic = topic
        }
    }

    public var id: String
    public var manufacturer: String?
    public var model: String?
    /// The pack that runs the meter: a discovery message without one is not a proxy's.
    public var pack: String?
    /// The instance whose proxy announced the meter (`instance:`), if any.
    public var instance: String?
    /// The site's name for the meter (`contexts:`), if any.
    public var context: String?
    public var topics: [Route]
    /// The meter's clock offset in seconds, when the proxy reports one.
    public var clockOffsetSeconds: Int?

    public init(id: String, manufacturer: String? = nil, model: String? = nil, pack: String? = nil, instance: String? = nil,
                context: String? = nil, topics: [Route] = [], clockOffsetSeconds: Int? = nil) {
        self.id = id
        self.manufacturer = manufacturer
        self.model = model
        self.pack = pack
        self.instance = instance
        self.context = context
        self.topics = topics
        self.clockOffsetSeconds = clockOffsetSeconds
    }

    /// The message's JSON, fields in a fixed order (the goldens hold it byte for byte).
    public var payload: [UInt8] {
        var w = JSONWriter()
        w.beginObject()
        w.field("id", id)
        if let manufacturer, !manufacturer.isEmpty { w.field("manufacturer", manufacturer) }
        if let model, !model.isEmpty { w.field("model", model) }
        if let pack { w.field("pack", pack) }
        if let instance { w.field("instance", instance) }
        if let context { w.field("context", context) }
        w.key("topics")
        w.beginObject()
        for route in topics { w.field(route.name, route.topic) }
        w.endObject()
        if let clockOffsetSeconds { w.field("clock_offset_s", clockOffsetSeconds) }
        w.endObject()
        return w.bytes
    }

    /// What a message on a discovery topic says.
    public enum Parsed: Sendable, Equatable {
        case meter(DiscoveryMessage)
        /// An empty retained message: the meter's discovery was withdrawn.
        case removed(id: String)
        /// Not usable; the reason for the log.
        case invalid(String)
    }

    /// The meter a discovery topic names: its last level.
    public static func id(inTopic topic: String) -> String? {
        guard let slash = topic.lastIndex(of: "/") else { return nil }
        let id = String(topic[topic.index(after: slash)...])
        return id.isEmpty ? nil : id
    }
}
