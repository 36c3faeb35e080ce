import Topics

/// A checked, compiled rule pack plus site config: immutable and `Sendable`.
///
/// Made only by `Compiler.compile`, so every reference in it resolves. An
/// `Engine` runs it; `process(topic:payload:now:)` lives there because the
/// filters have memory (duplicates, split packets, meters seen).
public struct Program: Sendable {
    public let packName: String
    let matcher: TopicMatcher
    let routes: [CompiledRoute]
    let device: CompiledDevice
    let site: CompiledSite
    let discoveryTopic: Template?
    let settings: [String: CompiledSetting]
    let operationID: (field: String, length: Int)?
    let commands: [CompiledCommand]
    let replies: [String: CompiledReply]
    /// Whether the pack takes, among several packs, every id its pattern
    /// matches (`device.id.claim: pattern`, the default) or only the ids the
    /// site assigns to it (`claim: site`).
    public internal(set) var claimsByPattern = true

    /// The topic filters to subscribe to on the meters' broker, one per route.
    public var subscriptions: [String] { routes.map(\.filter) }
    /// The route names, in pack order.
    public var routeNames: [String] { routes.map(\.name) }
    /// The site's root topic.
    public var rootTopic: String { site.root }
    /// The proxy's status topic (Home Assistant availability follows it).
    public var statusTopic: String { site.statusTopic }
    /// The deployment's instance name (`instance:`), if several run side by side.
    public var instance: String? { site.config.instance }
    /// The engine's part of the site config (Home Assistant, the proxy's status
    /// topic, the clock skew threshold); the services' settings come with it from `Site.load`.
    public var siteConfig: SiteConfig { site.config }
    /// The discovery topic filter for a config sender (`kpm33b/discovery/+`), if the pack has discovery.
    public var discoverySubscription: String? {
        discoveryTopic?.render { $0 == "root" ? site.root : "+" }
    }

    /// Whether the site excludes meter `id`.
    public func isExcluded(_ id: String) -> Bool { site.exclude.contains(id) }

    /// Whether `id` passes the pack's id pattern and is safe as a topic level.
    public func isValidDeviceID(_ id: String) -> Bool {
        device.isValid(Array(id.utf8))
    }

    /// Whether the pack claims `id` by its pattern (several packs: `PackRouter`).
    func claims(_ id: UnsafeRawBufferPointer) -> Bool {
        claimsByPattern && device.isValid(id)
    }

    /// The payload field that holds the meter id.
    public var idField: String { device.idField }
}

struct CompiledDevice: Sendable {
    let idField: String
    let pattern: IDPattern?
    let forms: [(name: String, take: DerivedForm.Take)]
    let clockField: String?
    let clockFormat: ClockFormat?
    let manufacturer: String
    let model: String
    let name: Template?

    /// The id check every id passes before it may appear in a topic: the
    /// pack's pattern, and (always) no topic separators or wildcards.
    func isValid(_ bytes: [UInt8]) -> Bool {
        bytes.withUnsafeBytes { isValid($0) }
    }

    func isValid(_ bytes: UnsafeRawBufferPointer) -> Bool {
        Topic.isSafeLevel(bytes) && (pattern?.matches(bytes) ?? true)
    }

    func form(_ name: String, of id: String) -> String? {
        guard let form = forms.first(where: { $0.name == name }) else { return nil }
        switch form.take {
        case .last(let n): return String(id.suffix(n))
        case .first(let n): return String(id.prefix(n))
        }
    }
}

struct CompiledSite: Sendable {
    let config: SiteConfig
    let root: String
    let statusTopic: String
    let exclude: Set<String>
    /// Group names enabled by default and per meter.
    let defaultGroups: Set<String>
    let meterGroups: [String: Set<String>]
    let contexts: [String: String]
    /// Meters with several loops (`device.loops`): every loop id → its base id
    /// and its loop number (0 for the base).
    var loops: [String: (base: String, index: Int)] = [:]

    func groups(for id: String) -> Set<String> { meterGroups[id] ?? defaultGroups }
}

struct CompiledSetting: Sendable {
    let name: String
    let allowed: [Int]
    let defaultValue: Int?
    let unit: String?
}

/// The expected JSON type of a slot, from the tag declaration.
enum SlotType: Sendable { case text, number, any }

struct CompiledField: Sendable {
    let name: String
    let slot: Int
    /// Index into the route's groups, or -1 for the always-present fields.
    let group: Int
    let unit: String
    let label: String
    let deviceClass: String?
    let stateClass: String?
    let precision: Int?
    let entity: Bool
    let counterGuard: CounterGuardRules?
    /// One bit of a mask text (`mask:`): rendered "ON"/"OFF", a Home Assistant binary_sensor.
    var mask: FieldMask? = nil

    /// The Home Assistant component of the field's entity.
    var component: String { mask == nil ? "sensor" : "binary_sensor" }
}

struct FieldMask: Sendable, Equatable {
    let part: Int
    let bit: Int
}

enum DuplicateKeyPart: Sendable { case topic, slot(Int) }

/// A class, not a struct: the engine touches one reference per message
/// instead of retaining each of these arrays.
final class CompiledRoute: Sendable {
    let index: Int
    let name: String
    let filter: String
    let keyTable: KeyTable
    let slotNames: [String]
    let slotTypes: [SlotType]
    /// Per slot, the value kinds its type accepts, one bit per `ValueKind`
    /// (missing and null always): the per-reading type check is one mask test a slot.
    let acceptedKinds: [UInt8]
    let idSlot: Int
    let clockSlot: Int?
    let reassembly: CompiledReassembly?
    let allZero: Bool
    let duplicateKey: [DuplicateKeyPart]?
    let duplicateMemory: Int
    let topic: Template
    let fields: [CompiledField]
    let groups: [String]
    let intervalSetting: String?
    let intervalSeconds: Int
    /// Whether a field derives its value (`mask:`): such routes render on the slower, general path.
    let derived: Bool

    init(index: Int, name: String, filter: String, keyTable: KeyTable, slotNames: [String], slotTypes: [SlotType],
         idSlot: Int, clockSlot: Int?, reassembly: CompiledReassembly?, allZero: Bool, duplicateKey: [DuplicateKeyPart]?,
         duplicateMemory: Int, topic: Template, fields: [CompiledField], groups: [String], intervalSetting: String?,
         intervalSeconds: Int) {
        self.index = index
        self.name = name
        self.filter = filter
        self.keyTable = keyTable
        self.slotNames = slotNames
        self.slotTypes = slotTypes
        let always: UInt8 = 1 << ValueKind.missing.rawValue | 1 << ValueKind.null.rawValue
        self.acceptedKinds = slotTypes.map { type in
            switch type {
            case .text: always | 1 << ValueKind.string.rawValue
            case .number: always | 1 << ValueKind.number.rawValue
            case .any: 0xFF
            }
        }
        self.idSlot = idSlot
        self.clockSlot = clockSlot
        self.reassembly = reassembly
        self.allZero = allZero
        self.duplicateKey = duplicateKey
        self.duplicateMemory = duplicateMemory
        self.topic = topic
        self.fields = fields
        self.groups = groups
        self.intervalSetting = intervalSetting
        self.intervalSeconds = intervalSeconds
        self.derived = fields.contains { $0.mask != nil }
    }
}

/// A class, not a struct: a reading of a route that reassembles holds it by
/// one reference instead of copying (retaining) its two arrays.
final class CompiledReassembly: Sendable {
    let keySlots: [Int]
    let completeSlot: Int
    /// The completion value as a JSON string literal, byte for byte (`"1"`).
    let completeRaw: [UInt8]
    let maxParts: Int
    let maxBytes: Int
    let maxAgeMillis: Int64

    init(keySlots: [Int], completeSlot: Int, completeRaw: [UInt8], maxParts: Int, maxBytes: Int, maxAgeMillis: Int64) {
        self.keySlots = keySlots
        self.completeSlot = completeSlot
        self.completeRaw = completeRaw
        self.maxParts = maxParts
        self.maxBytes = maxBytes
        self.maxAgeMillis = maxAgeMillis
    }
}

struct CompiledCommand: Sendable {
    enum Value: Sendable { case setting(String), clock(ClockFormat), none, request }
    let name: String
    let topic: Template
    let payload: [(key: String, value: Template)]
    let value: Value
    let replyTopic: String
    /// `value: { request: … }`: sent on demand only, never in the daily pass.
    var request: CompiledRequest? = nil
}

struct CompiledReply: Sendable {
    let topic: String
    let keyTable: KeyTable
    let idSlot: Int
    let operationSlot: Int
    let success: [(slot: Int, value: String)]
    let messageSlot: Int?
    let commands: [String]
}
