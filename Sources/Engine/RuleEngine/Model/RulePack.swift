import YAML

/// What a rule pack's YAML said, with a location on every value.
///
/// This is the unchecked form: references may point nowhere. `Compiler`
/// checks it (collecting every problem) and turns it into a `Program`.
public struct RulePack: Sendable {
    public var file: String
    public var name: Located<String>
    public var description: String?
    public var device: DeviceRules
    public var tags: [TopicTags]
    public var routes: [RouteRules]
    public var discoveryTopic: Located<String>?
    public var settings: [SettingRules]
    public var operationID: OperationIDRules?
    public var commands: [CommandRules]
}

public struct DeviceRules: Sendable {
    public var idField: Located<String>
    public var pattern: Located<String>?
    /// `device.id.claim`: `pattern` (default: the pack takes every id its
    /// pattern matches when several packs share a process) or `site` (only the
    /// ids a site assigns with `pack:` or `default_pack`).
    public var claim: Located<String>?
    public var forms: [DerivedForm]
    public var clockField: Located<String>?
    public var clockFormat: Located<String>?
    public var manufacturer: String
    public var model: String
    public var name: Located<String>?
    /// `device.loops`: a meter measuring several loops under consecutive ids
    /// (the KPM312: 4); the site names the base id, the pack derives the others.
    public var loops: Located<Int>?
}

/// A derived form of the id, such as its last 8 characters.
public struct DerivedForm: Sendable {
    public enum Take: Sendable { case first(Int), last(Int) }
    public var name: Located<String>
    public var take: Take
}

public enum TagType: Sendable, Equatable {
    case text
    case number(unit: String)
}

public struct TopicTags: Sendable {
    public var topic: Located<String>
    /// Each tag with its type and where the type (the unit) is written.
    public var tags: [(name: Located<String>, type: TagType, typeMark: Mark)]
}

public struct RouteRules: Sendable {
    public var name: Located<String>
    public var match: Located<String>
    public var intervalSetting: Located<String>?
    public var intervalSeconds: Int
    public var reassembly: ReassemblyRules?
    public var allZeroIgnore: [Located<String>]?
    public var duplicate: DuplicateRules?
    public var topic: Located<String>
    public var fields: [FieldRules]
    public var groups: [(name: Located<String>, fields: [FieldRules])]
}

public struct ReassemblyRules: Sendable {
    public var key: [Located<String>]
    public var completeField: Located<String>
    public var completeValue: Located<String>
    public var maxParts: Int
    public var maxBytes: Int
    public var maxAgeSeconds: Int
    public var mark: Mark
}

public struct DuplicateRules: Sendable {
    public var key: [Located<String>]
    public var memory: Located<Int>
    public var mark: Mark
}

public struct FieldRules: Sendable {
    public var name: Located<String>
    public var from: Located<String>
    public var unit: Located<String>?
    public var label: String?
    public var deviceClass: Located<String>?
    public var stateClass: Located<String>?
    public var precision: Located<Int>?
    public var entity: Bool?
    /// `guard:` of a counter field (energy): what the engine lets through.
    public var counterGuard: CounterGuardRules?
    /// `mask:` of a text field holding `@`-separated hexadecimal bit masks
    /// (`"00000003@00000001"`, digital inputs @ outputs): one bit as "ON"/"OFF".
    public var mask: MaskRules?
}

/// One bit of one of the `@`-separated hexadecimal masks of a text tag.
public struct MaskRules: Sendable {
    public var part: Located<Int>
    public var bit: Located<Int>
    public var mark: Mark
}

/// A counter that only goes up (an energy total): a reading that falls by
/// more than `maxDrop`, or rises faster than `maxRisePerHour`, is not
/// forwarded, unless `acceptResetAfter` readings in a row agree with each
/// other (a real reset or a replaced meter).
public struct CounterGuardRules: Sendable {
    public var mark: Mark
    public var maxDrop: Double = 0
    public var maxRisePerHour: Double?
    public var acceptResetAfter: Int = 3
}

public struct SettingRules: Sendable {
    public var name: Located<String>
    public var allowed: [Located<Int>]
    public var defaultValue: Located<Int>?
    public var unit: String?
}

/// `value: { request: … }` of a command sent on demand (a relay switched from
/// Home Assistant): where requests arrive, what they may say, where the
/// confirmed state goes.
public struct RequestRules: Sendable {
    /// The clean command topic on the central broker, with `{id}` (`{root}/{id}/relay/set`).
    public var topic: Located<String>
    /// The confirmed state's topic (retained), with `{id}`.
    public var state: Located<String>
    /// Accepted request payloads and the command value each stands for (`ON: "1"`).
    public var values: [(key: Located<String>, value: Located<String>)]
    /// The Home Assistant switch's name.
    public var name: String?
    public var mark: Mark
}

public struct OperationIDRules: Sendable {
    public var field: Located<String>
    public var length: Located<Int>
}

public struct CommandRules: Sendable {
    public enum Value: Sendable {
        case setting(Located<String>)
        case clock(Located<String>)
        /// Sent on demand: a request on the central broker (a Home Assistant switch).
        case request(RequestRules)
    }
    public var name: Located<String>
    public var topic: Located<String>
    public var payload: [(key: String, value: Located<String>)]
    public var value: Value?
    public var replyTopic: Located<String>
    public var success: [(field: Located<String>, value: String)]
    public var messageField: Located<String>?
    public var mark: Mark
}
