import JSON
import RuleEngine

/// The reading side of the engine's `DiscoveryMessage` (the engine writes it
/// and has no JSON parser): config-sender's discovery and the proxy's ledger
/// parse the retained messages here.
extension DiscoveryMessage {
    /// The id is the topic's last level; a payload `id`, when present, must
    /// agree. A `clock_offset_s` that is not a number is taken as none.
    public static func parse(topic: String, payload: [UInt8]) -> Parsed {
        guard let id = id(inTopic: topic) else { return .invalid("no meter id in the topic") }
        if payload.isEmpty { return .removed(id: id) }
        let document: JSONValue
        do { document = try JSONValue.parse(payload) } catch { return .invalid("payload is not JSON: \(error)") }
        guard let object = document.objectValue else { return .invalid("payload is not a JSON object") }
        if let value = object["id"] {
            guard value.stringValue == id else { return .invalid("payload id does not match the topic") }
        }
        var offset: Int?
        switch object["clock_offset_s"] {
        case nil, .null?: offset = nil
        case .integer(let v)?: offset = Int(clamping: v)
        case .real(let v)? where v.isFinite && abs(v) < 1e15: offset = Int(v.rounded())
        case .string(let s)?: offset = Int(s)
        default: offset = nil
        }
        var routes: [Route] = []
        for (name, value) in object["topics"]?.objectValue ?? [:] {
            if let topic = value.stringValue { routes.append(Route(name: name, topic: topic)) }
        }
        return .meter(DiscoveryMessage(
            id: id, manufacturer: object["manufacturer"]?.stringValue, model: object["model"]?.stringValue,
            pack: object["pack"]?.stringValue, instance: object["instance"]?.stringValue,
            context: object["context"]?.stringValue, topics: routes, clockOffsetSeconds: offset))
    }
}
