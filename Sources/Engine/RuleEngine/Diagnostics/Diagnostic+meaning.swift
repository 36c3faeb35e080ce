extension Diagnostic.Code {
    /// The code in one sentence: what `rulecheck lint --format sarif` gives
    /// as the rule's description, and what docs/diagnostics.md lists.
    public var meaning: String {
        switch self {
        case .yamlSyntax: "The file is not valid YAML."
        case .duplicateKey: "A mapping names the same key twice."
        case .yamlUnsupported: "A YAML feature the loader refuses: anchors, aliases, tags, complex keys, several documents."
        case .unknownKey: "A key this place does not define."
        case .missingKey: "A required key is absent."
        case .wrongType: "The value has the wrong shape (mapping, list, number, …)."
        case .unknownTag: "A field names a tag its topic does not declare."
        case .unknownVariable: "A template names a variable that does not exist here."
        case .overlappingRoutes: "Two routes can match the same topic."
        case .unsafeTopicValue: "A value can reach a topic level without a safe pattern."
        case .invalidFilter: "Not a valid MQTT topic filter or topic."
        case .invalidPattern: "An id pattern that does not parse."
        case .unknownReference: "A name that refers to nothing (group, setting, route, form)."
        case .duplicateName: "The same output field or name declared twice."
        case .invalidValue: "A value outside its allowed range or list."
        case .unitMismatch: "A field's unit differs from its tag's declared unit."
        case .noMatchingTopic: "A route's filter matches no declared topic."
        case .homeAssistant: "A device class, unit or state class Home Assistant would reject."
        case .packClaim: "Packs of one process that claim the same ids, or the same pack twice."
        case .secretInConfig: "A password written in the YAML itself."
        case .invalidName: "A context or meter name that is not topic-safe."
        case .settingNotAllowed: "A setting value the pack does not allow."
        case .deprecatedKey: "A key still accepted but ignored (a warning)."
        case .unknownConfigKey: "A key this place of the site config does not define."
        case .missingConfigKey: "A required key of the site config is absent."
        case .wrongConfigType: "A site-config value has the wrong shape."
        case .unknownConfigReference: "A site-config name that refers to nothing in the pack (group, setting)."
        case .invalidConfigValue: "A site-config value outside its allowed range or list."
        case .meterPack: "A meter no pack claims or two claim, an unknown pack, a defaults entry its pack lacks."
        case .unreadableFile: "A file that cannot be read."
        }
    }
}
