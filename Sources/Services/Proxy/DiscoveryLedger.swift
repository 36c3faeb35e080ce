import MQTT
import RuleEngine

/// What the central broker retains of the proxy's announcements, meter by
/// meter, and the messages that bring it to what the rules and the site
/// config want now.
///
/// The proxy stays subscribed to its packs' discovery topics (each pack's
/// `discovery.topic` as a filter: `kpm33b/discovery/+`)
/// and to Home Assistant's (`<prefix>/device/+/config`, `<prefix>/+/+/+/config`)
/// on the central broker: the retained messages arrive at start-up and after
/// every reconnect, and later changes (its own publishes, a
/// `kpm33b-proxy retire` beside it) as they happen. So the ledger is a mirror
/// of the broker, and an announcement goes out only when it changes
/// something there.
///
/// ## Which retained messages are the proxy's
/// - A discovery message (`DiscoveryMessage`) on a pack's discovery topic
///   whose `id` is the topic's last level and which names its `pack`.
/// - A Home Assistant config: its origin's `name` is the proxy's
///   (`kpm33b-proxy`), its device's `serial_number` is a meter id, and the
///   device's first identifier, the node, ends with `_<id>` (the node is
///   `<pack>_<id>`, and every `unique_id` starts with it).
/// Nothing else on these topics is touched, and nothing is cleared that is
/// not retained as the proxy's: no clears for what was never announced.
///
/// ## Convergence, per meter
/// - A device config (`homeassistant.discovery: device`) that lost components
///   (a renamed or removed field, a disabled group) is first sent with each
///   lost component reduced to its platform (`{"p":"sensor"}`), which is how
///   Home Assistant's device discovery removes one, then in full.
/// - Per-entity configs (`entity`) whose field is gone are cleared (empty
///   retained payload).
/// - Switching forms migrates the entities the way Home Assistant documents:
///   `{"migrate_discovery": true}` on each old topic, the new configs (with
///   the same discovery ids, so the entities keep their ids and history),
///   then an empty payload on the old topics.
/// - A meter with nothing to announce (excluded, Home Assistant off) has all
///   of its retained configs cleared; an excluded meter its discovery too.
struct DiscoveryLedger {
    struct Meter {
        var discovery: (topic: LedgerTopics.Kept, digest: Int)?
        /// The instance its retained discovery message names (nil: none).
        var owner: String?
        /// Per-entity configs: topic → digest.
        var entities: [String: Int] = [:]
        /// The device config, with its live components.
        var device: (topic: LedgerTopics.Kept, digest: Int, components: Components)?

        var isEmpty: Bool { discovery == nil && entities.isEmpty && device == nil }

        /// Whether the broker holds the meter as announced by another instance.
        func isOwned(byOtherThan instance: String?) -> Bool { discovery != nil && owner != instance }
    }

    /// Every pack's discovery topic filter (`ProgramSet.discoverySubscriptions`).
    let discoveryFilters: [String]
    let discoveryPrefix: String
    let originName: String
    /// This proxy's `instance`, which its discovery messages name.
    let instance: String?
    private(set) var meters: [String: Meter] = [:]
    /// The most meters read back from the broker (`proxy.max_meters`);
    /// messages of more are not recorded, and counted in `overflowed`. With
    /// the meters the proxy announces itself (the engines', bounded by the
    /// same limit) the ledger holds at most twice this many.
    var maxMeters: Int
    /// Retained messages of meters past `maxMeters` since the last reset.
    private(set) var overflowed = 0
    /// Home Assistant topic → meter, for the empty payloads, which name no
    /// meter (a discovery topic names its meter itself) — only the topics
    /// whose node level does not name their meter (`<pack>_<id>`, as the
    /// engine writes them: `meter(namedBy:)`), so a site's own configs cost
    /// no entry here (it was 0.5 MB at 10,000 meters).
    private var owners: [String: String] = [:]
    /// Home Assistant topics kept in `owners` (tests).
    var ownersCount: Int { owners.count }
    /// The distinct component sets recorded (a site has a few, one per set
    /// of groups), so that the meters with the same set share one string
    /// instead of one each; at most `maxComponentSets`, past which a set is
    /// kept by its meter alone.
    private var componentSets: Set<Components> = []
    /// The recorded topics' shared forms.
    private var topics = LedgerTopics()
    /// How many topic forms the meters share (tests).
    var topicFormCount: Int { topics.formCount }
    static let maxComponentSets = 64
    /// How many distinct component sets the meters share (tests).
    var componentSetCount: Int { componentSets.count }

    init(discoveryFilters: [String], discoveryPrefix: String, originName: String, instance: String? = nil, maxMeters: Int = .max) {
        self.maxMeters = maxMeters
        self.discoveryFilters = discoveryFilters
        self.discoveryPrefix = discoveryPrefix
        self.originName = originName
        self.instance = instance
    }

    /// The topic filters whose retained messages the ledger mirrors.
    var filters: [String] {
        discoveryFilters + ["\(discoveryPrefix)/device/+/config", "\(discoveryPrefix)/+/+/+/config"]
    }

    /// Forgets everything (a new connection reads the broker again).
    mutating func reset() {
        meters.removeAll()
        owners.removeAll()
        overflowed = 0
    }

    // MARK: Reading the broker

    /// A message on one of `filters`: retained at subscription, or live.
    mutating func observe(topic: String, payload: [UInt8]) {
        if let previous = owner(of: topic) { forget(topic: topic, of: previous) }
        guard !payload.isEmpty else { return }
        let digest = Self.digest(payload)
        if isDiscoveryTopic(topic) {
            guard case .meter(let message) = DiscoveryMessage.parse(topic: topic, payload: payload),
                  message.pack != nil, hasRoom(for: message.id) else { return }
            meters[message.id, default: Meter()].discovery = (topics.keep(topic, id: message.id), digest)
            meters[message.id, default: Meter()].owner = message.instance
            return
        }
        guard let config = HomeAssistantMeterConfig(payload: payload) else { return }
        let levels = topic.split(separator: "/", omittingEmptySubsequences: false)
        guard topic.hasPrefix("\(discoveryPrefix)/"), let id = config.meter(publishedBy: originName), hasRoom(for: id) else { return }
        if topic.hasSuffix("/config"), levels.count >= 3, levels[levels.count - 3] == "device" {
            meters[id, default: Meter()].device = (topics.keep(topic, id: id), digest, shared(Components(config.components)))
        } else {
            meters[id, default: Meter()].entities[topic] = digest
        }
        if meter(namedBy: topic) != id { owners[topic] = id }
    }

    /// Whether meter `id` is held or may be; counts a refusal.
    private mutating func hasRoom(for id: String) -> Bool {
        if meters.count < maxMeters || meters[id] != nil { return true }
        overflowed += 1
        return false
    }

    private func isDiscoveryTopic(_ topic: String) -> Bool {
        discoveryFilters.contains { MQTTTopic.matches(filter: $0, topic: topic) }
    }

    /// The meter whose retained message `topic` holds: a discovery topic
    /// names it (its last level), a Home Assistant topic is looked up.
    private func owner(of topic: String) -> String? {
        guard isDiscoveryTopic(topic) else { return owners[topic] ?? meter(namedBy: topic) }
        guard let id = DiscoveryMessage.id(inTopic: topic) else { return nil }
        return topics.matches(meters[id]?.discovery?.topic, topic, id: id) ? id : nil
    }

    private mutating func forget(topic: String, of id: String) {
        owners[topic] = nil
        guard var meter = meters[id] else { return }
        if topics.matches(meter.discovery?.topic, topic, id: id) {
            meter.discovery = nil
            meter.owner = nil
        }
        if topics.matches(meter.device?.topic, topic, id: id) { meter.device = nil }
        meter.entities[topic] = nil
        meters[id] = meter.isEmpty ? nil : meter
    }

    /// The meter that holds Home Assistant config `topic` and whose id ends
    /// a level of it after a `_` (the node `<pack>_<id>`), if there is one.
    private func meter(namedBy topic: String) -> String? {
        for level in topic.utf8.split(separator: UInt8(ascii: "/")) {
            var rest = level[...]
            while let underscore = rest.firstIndex(of: UInt8(ascii: "_")) {
                rest = rest[rest.index(after: underscore)...]
                let id = String(decoding: rest, as: UTF8.self)
                if let meter = meters[id], topics.matches(meter.device?.topic, topic, id: id) || meter.entities[topic] != nil { return id }
            }
        }
        return nil
    }

    /// `components` as recorded already for another meter, if it is.
    private mutating func shared(_ components: Components) -> Components {
        if let known = componentSets.firstIndex(of: components) { return componentSets[known] }
        if componentSets.count < Self.maxComponentSets { componentSets.insert(components) }
        return components
    }

    static func digest(_ payload: [UInt8]) -> Int {
        var h = Hasher()
        payload.withUnsafeBytes { h.combine(bytes: $0) }
        return h.finalize()
    }

    // MARK: Converging

    /// What to publish so that the broker holds meter `id`'s `discovery`
    /// message (nil: leave it; an empty payload: clear it) and exactly the
    /// `homeAssistant` configs given (nil: leave them; empty: clear them all).
    /// `forced` sends the configs even when the broker has them (Home
    /// Assistant came online). The ledger takes the result as published.
    mutating func plan(id: String, discovery: Outgoing?, homeAssistant: [Outgoing]?, forced: Bool,
                       program: Program, origin: Origin) -> [Outgoing] {
        var meter = meters[id] ?? Meter()
        var out: [Outgoing] = []
        if let discovery {
            if discovery.payload.isEmpty {
                if let recorded = meter.discovery {
                    out.append(Outgoing(topic: topics.topic(recorded.topic, id: id), payload: [], retain: true, kind: .discovery, device: id))
                    meter.discovery = nil
                    meter.owner = nil
                }
            } else {
                let digest = Self.digest(discovery.payload)
                if meter.discovery?.digest != digest || !topics.matches(meter.discovery?.topic, discovery.topic, id: id) {
                    if let old = meter.discovery, !topics.matches(old.topic, discovery.topic, id: id) {
                        out.append(Self.clear(topics.topic(old.topic, id: id), .discovery, id))
                    }
                    out.append(discovery)
                    meter.discovery = (topics.keep(discovery.topic, id: id), digest)
                    meter.owner = instance
                }
            }
        }
        if let wanted = homeAssistant {
            out += planHomeAssistant(id: id, wanted: wanted, forced: forced, meter: &meter, program: program, origin: origin)
        }
        meters[id] = meter.isEmpty ? nil : meter
        for message in out where !isDiscoveryTopic(message.topic) {
            owners[message.topic] = message.payload.isEmpty || self.meter(namedBy: message.topic) == id ? nil : id
        }
        return out
    }

    private mutating func planHomeAssistant(id: String, wanted: [Outgoing], forced: Bool, meter: inout Meter,
                                   program: Program, origin: Origin) -> [Outgoing] {
        var out: [Outgoing] = []
        let deviceTopic = program.homeAssistantDeviceTopic(for: id)
        if let device = wanted.first(where: { $0.topic == deviceTopic }) {
            let digest = Self.digest(device.payload)
            // The broker has this very config (the usual case): its components are known.
            let unchanged = meter.device.flatMap { topics.matches($0.topic, deviceTopic, id: id) && $0.digest == digest ? $0.components : nil }
            let packed = unchanged ?? shared(Components(HomeAssistantMeterConfig(payload: device.payload)?.components ?? [:]))
            let components = packed.dictionary
            if let recorded = meter.device, topics.matches(recorded.topic, deviceTopic, id: id) {
                let lost = recorded.components.dictionary.filter { components[$0.key] == nil }
                if !lost.isEmpty {
                    out.append(program.homeAssistantRemoval(
                        for: id, components: lost.sorted { $0.key < $1.key }.map { ($0.key, $0.value) }, origin: origin))
                }
            }
            // Per-entity configs of fields the device config carries migrate; the others go.
            let entityTopics = meter.entities.keys.sorted()
            let migrating = entityTopics.filter { topic in
                let levels = topic.split(separator: "/")
                return levels.count >= 2 && components[String(levels[levels.count - 2])] != nil
            }
            out += migrating.map(Self.migrate)
            if forced || !migrating.isEmpty || meter.device?.digest != digest || !topics.matches(meter.device?.topic, deviceTopic, id: id) {
                out.append(device)
            }
            out += entityTopics.map { Self.clear($0, .homeAssistant, id) }
            meter.entities.removeAll()
            meter.device = (topics.keep(device.topic, id: id), digest, packed)
        } else {
            let wantedTopics = Set(wanted.map(\.topic))
            // A device config migrates back to per-entity configs when some of its components remain.
            var oldDevice: String?
            if let recorded = meter.device {
                let recordedTopic = topics.topic(recorded.topic, id: id)
                oldDevice = recordedTopic
                let recordedComponents = recorded.components.dictionary
                let remaining = wanted.contains { message in
                    let levels = message.topic.split(separator: "/")
                    return levels.count >= 2 && recordedComponents[String(levels[levels.count - 2])] != nil
                }
                if remaining { out.append(Self.migrate(recordedTopic)) }
                meter.device = nil
            }
            for message in wanted {
                let digest = Self.digest(message.payload)
                if forced || oldDevice != nil || meter.entities[message.topic] != digest {
                    out.append(message)
                    meter.entities[message.topic] = digest
                }
            }
            for topic in meter.entities.keys.sorted() where !wantedTopics.contains(topic) {
                out.append(Self.clear(topic, .homeAssistant, id))
                meter.entities[topic] = nil
            }
            if let oldDevice { out.append(Self.clear(oldDevice, .homeAssistant, id)) }
        }
        return out
    }

    /// Every retained message of meter `id`, cleared (`kpm33b-proxy retire`,
    /// an excluded meter).
    mutating func clearAll(id: String, program: Program, origin: Origin) -> [Outgoing] {
        plan(id: id, discovery: Outgoing(topic: "", payload: [], retain: true, kind: .discovery, device: id),
             homeAssistant: [], forced: false, program: program, origin: origin)
    }

    private static func clear(_ topic: String, _ kind: Outgoing.Kind, _ id: String) -> Outgoing {
        Outgoing(topic: topic, payload: [], retain: true, kind: kind, device: id)
    }

    private static func migrate(_ topic: String) -> Outgoing {
        Outgoing(topic: topic, payload: Array(#"{"migrate_discovery":true}"#.utf8), retain: true, kind: .homeAssistant)
    }
}

/// A device config's live components (object → platform), packed in one
/// string (`object platform` lines, sorted): the ledger keeps one per meter,
/// and a dictionary of small strings costs several times more. Objects and
/// platforms never hold a space or a newline (Home Assistant ids).
struct Components: Hashable {
    private let packed: String

    init(_ components: [String: String]) {
        packed = components.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)\n" }.joined()
    }

    var dictionary: [String: String] {
        var out: [String: String] = [:]
        for line in packed.split(separator: "\n") {
            guard let space = line.firstIndex(of: " ") else { continue }
            out[String(line[..<space])] = String(line[line.index(after: space)...])
        }
        return out
    }

    var count: Int { packed.utf8.reduce(0) { $1 == UInt8(ascii: "\n") ? $0 + 1 : $0 } }
}
