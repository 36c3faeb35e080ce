/// One message the engine wants published.
public struct Outgoing: Sendable, Equatable {
    public enum Kind: String, Sendable { case data, discovery, homeAssistant, command }
    public var topic: String
    public var payload: [UInt8]
    public var retain: Bool
    public var kind: Kind
    /// The meter a data message, a discovery message or a Home Assistant config is about.
    public var device: String?

    public init(topic: String, payload: [UInt8], retain: Bool, kind: Kind, device: String? = nil) {
        self.topic = topic
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
/// capacity, and the storage of the last data message's payload, which the
/// next clean payload is written into (no allocation per reading once the
/// caller is done with the bytes; one it still holds keeps its own copy).
public struct ProcessOutput: Sendable {
    public var messages: [Outgoing] = []
    public var drops: [Drop] = []
    /// The meters whose first clean reading since the engine started is among `messages`.
    public var heard: [String] = []
    /// A payload's storage for the next data message (`takeSpare`).
    private(set) var spare: [UInt8] = []
    public init() {}
    public mutating func removeAll() {
        if spare.capacity == 0, let i = messages.lastIndex(where: { $0.kind == .data }) {
            swap(&spare, &messages[i].payload)
        }
        messages.removeAll(keepingCapacity: true)
        drops.removeAll(keepingCapacity: true)
        if !heard.isEmpty { heard.removeAll(keepingCapacity: true) }
    }

    /// The spare payload storage (empty when there is none), handed to the engine's renderer.
    mutating func takeSpare() -> [UInt8] {
        var taken: [UInt8] = []
        swap(&taken, &spare)
        return taken
    }
}
