/// One message the engine wants published.
public struct Outgoing: Sendable, Equatable {
    public enum Kind: String, Sendable { case data, discovery, homeAssistant, command }
    /// The topic's UTF-8 bytes, as the journal and the publish take them:
    /// a data message's topic is written into storage reused across
    /// readings (`ProcessOutput`), never made a `String` on the way out.
    public var topicBytes: [UInt8]
    public var payload: [UInt8]
    public var retain: Bool
    public var kind: Kind
    /// The meter a data message, a discovery message or a Home Assistant config is about.
    public var device: String?

    /// The topic as text, made on each call: for logs, announcements and
    /// tests, not for the per-reading path (`topicBytes`).
    public var topic: String { String(decoding: topicBytes, as: UTF8.self) }

    public init(topic: String, payload: [UInt8], retain: Bool, kind: Kind, device: String? = nil) {
        self.init(topicBytes: Array(topic.utf8), payload: payload, retain: retain, kind: kind, device: device)
    }

    public init(topicBytes: [UInt8], payload: [UInt8], retain: Bool, kind: Kind, device: String? = nil) {
        self.topicBytes = topicBytes
        self.payload = payload
        self.retain = retain
        self.kind = kind
        self.device = device
    }
}

/// Why a message (or a set of split parts) was not forwarded.
public enum DropReason: String, Sendable, CaseIterable {
    case malformed, wrongType = "wrong_type", invalidID = "invalid_id", invalidTime = "invalid_time", excluded
    case allZero = "all_zero", duplicate, incomplete, unrouted
    /// A guarded counter fell, or rose faster than its meter can count.
    case counterGlitch = "counter_glitch"
    /// Several packs run and none claims the meter id (no site `pack:`, no pattern, no `default_pack`).
    case unclaimed
    /// A new meter while the engines remember as many as their `MeterLimit` allows.
    case meterLimit = "meter_limit"
}

public struct Drop: Sendable, Equatable {
    public var reason: DropReason
    public var topic: String
    public var detail: String
}

/// What one call produced. Reuse one value across calls: `removeAll` keeps the
/// capacity, and the storage of the last data message's payload and topic,
/// which the next clean message is written into (no allocation per reading
/// once the caller is done with the bytes; one it still holds keeps its own copy).
public struct ProcessOutput: Sendable {
    public var messages: [Outgoing] = []
    public var drops: [Drop] = []
    /// The meters whose first clean reading since the engine started is among `messages`.
    public var heard: [String] = []
    /// A payload's storage for the next data message (`takeSpare`).
    private(set) var spare: [UInt8] = []
    /// A topic's storage for the next data message (`takeSpareTopic`).
    private(set) var spareTopic: [UInt8] = []
    public init() {}

    /// Empties the output for the next call. The common case, one clean
    /// message and nothing else, costs one element's removal: no general
    /// range replacement, no search through a closure.
    public mutating func removeAll() {
        if !messages.isEmpty {
            var i = messages.count - 1
            while i > 0 && messages[i].kind != .data { i -= 1 }
            if messages[i].kind == .data {
                if spare.capacity == 0 { swap(&spare, &messages[i].payload) }
                if spareTopic.capacity == 0 { swap(&spareTopic, &messages[i].topicBytes) }
            }
            if messages.count == 1 { messages.removeLast() } else { messages.removeAll(keepingCapacity: true) }
        }
        if !drops.isEmpty { drops.removeAll(keepingCapacity: true) }
        if !heard.isEmpty { heard.removeAll(keepingCapacity: true) }
    }

    /// The spare payload storage (empty when there is none), handed to the engine's renderer.
    mutating func takeSpare() -> [UInt8] {
        var taken: [UInt8] = []
        swap(&taken, &spare)
        return taken
    }

    /// The spare topic storage (empty when there is none), handed to the route's `TopicPlan`.
    mutating func takeSpareTopic() -> [UInt8] {
        var taken: [UInt8] = []
        swap(&taken, &spareTopic)
        return taken
    }
}
