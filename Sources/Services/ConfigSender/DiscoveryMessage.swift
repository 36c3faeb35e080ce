import JSON

/// A message on the central broker's discovery topic (`kpm33b/discovery/<id>`),
/// as the proxy publishes it (retained):
/// `{"id":"33B1225950027","manufacturer":"Compere",…,"clock_offset_s":-123456}`.
public enum DiscoveryMessage: Sendable, Equatable {
    /// A meter, with its clock offset in seconds when the proxy reported one.
    case meter(id: String, clockOffsetSeconds: Int?)
    /// An empty retained message: the meter's discovery was withdrawn.
    case removed(id: String)
    /// Not usable; the reason for the log.
    case invalid(String)

    /// The instance whose proxy announced the meter (`instance` in the payload), if any.
    public static func instance(in payload: [UInt8]) -> String? {
        (try? JSONValue.parse(payload))?["instance"]?.stringValue
    }

    /// The id is the topic's last level; a payload `id`, when present, must agree.
    public static func parse(topic: String, payload: [UInt8]) -> DiscoveryMessage {
        guard let slash = topic.lastIndex(of: "/") else { return .invalid("no meter id in the topic") }
        let id = String(topic[topic.index(after: slash)...])
        guard !id.isEmpty else { return .invalid("no meter id in the topic") }
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
        return .meter(id: id, clockOffsetSeconds: offset)
    }
}
