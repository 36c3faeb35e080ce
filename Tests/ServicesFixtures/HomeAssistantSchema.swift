import JSON
import RuleEngine

/// What Home Assistant's MQTT integration accepts in a discovery config, as
/// its schemas say (`homeassistant/components/mqtt/`: `discovery.py` for the
/// device form, `schemas.py`, `entity.py`, `sensor.py`, `binary_sensor.py`;
/// the version of `HomeAssistant.version`). A device config is expanded the
/// way `discovery.py` does it — abbreviations replaced, each component given
/// the device, the origin and the shared options it does not set itself — and
/// every component is checked like a per-entity config.
enum HomeAssistantSchema {
    /// Keys `discovery.py` hands down from a device config to its components.
    static let sharedOptions: Set<String> = [
        "availability", "availability_mode", "availability_template", "availability_topic",
        "command_topic", "encoding", "payload_available", "payload_not_available", "state_topic", "qos",
    ]
    static let abbreviations = ["dev": "device", "o": "origin", "cmps": "components", "p": "platform",
                                "ids": "identifiers", "sn": "serial_number", "mf": "manufacturer", "mdl": "model",
                                "sw": "sw_version", "avty": "availability", "uniq_id": "unique_id", "stat_t": "state_topic"]

    /// Every config: availability, the entity's common keys, a read-only state topic.
    static let commonKeys: Set<String> = [
        "availability", "availability_mode", "availability_template", "availability_topic",
        "payload_available", "payload_not_available",
        "device", "enabled_by_default", "entity_category", "entity_picture", "icon",
        "json_attributes_topic", "json_attributes_template", "default_entity_id", "object_id", "unique_id",
        "origin", "name", "qos", "encoding", "state_topic", "value_template", "platform",
    ]
    static let platformKeys: [String: Set<String>] = [
        "sensor": ["device_class", "expire_after", "force_update", "last_reset_value_template", "options",
                   "suggested_display_precision", "state_class", "unit_of_measurement"],
        "binary_sensor": ["device_class", "expire_after", "force_update", "off_delay", "payload_off", "payload_on"],
        "switch": ["command_topic", "device_class", "optimistic", "payload_off", "payload_on", "retain", "state_off", "state_on"],
    ]

    /// The problems of one discovery message on `topic` (empty: Home Assistant takes it).
    static func problems(topic: String, payload: [UInt8], prefix: String = "homeassistant") -> [String] {
        guard let object = (try? JSONValue.parse(payload))?.objectValue else { return ["\(topic): not a JSON object"] }
        let levels = topic.split(separator: "/").map(String.init)
        guard levels.first == prefix, levels.last == "config", levels.count == 4 || levels.count == 5 else {
            return ["\(topic): not a discovery topic"]
        }
        let expanded = expand(object)
        if levels[1] == "device" {
            var problems: [String] = []
            for key in ["device", "origin", "components"] where expanded[key]?.objectValue == nil {
                problems.append("\(topic): a device config needs '\(key)'")
            }
            guard let components = expanded["components"]?.objectValue else { return problems }
            for (id, value) in components {
                guard var component = value.objectValue.map(expand), let platform = component["platform"]?.stringValue else {
                    problems.append("\(topic) \(id): a component needs 'platform'")
                    continue
                }
                if component.count == 1 { continue }  // a removal
                component["device"] = expanded["device"]
                component["origin"] = expanded["origin"]
                for key in sharedOptions where component[key] == nil { component[key] = expanded[key] }
                if component["unique_id"] == nil { problems.append("\(topic) \(id): a device's component needs 'unique_id'") }
                problems += check(component, platform: platform, what: "\(topic) \(id)")
            }
            return problems
        }
        return check(expanded, platform: levels[1], what: topic)
    }

    private static func expand(_ object: JSONObject) -> JSONObject {
        JSONObject(object.map { (abbreviations[$0.key] ?? $0.key, $0.value) })
    }

    private static func check(_ config: JSONObject, platform: String, what: String) -> [String] {
        guard let own = platformKeys[platform] else { return ["\(what): platform '\(platform)' is not checked here"] }
        var problems: [String] = []
        for (key, _) in config where !commonKeys.contains(key) && !own.contains(key) {
            problems.append("\(what): '\(key)' is not a key of an MQTT \(platform)")
        }
        if platform == "switch" {
            if config["command_topic"]?.stringValue?.isEmpty != false { problems.append("\(what): 'command_topic' is required") }
        } else if config["state_topic"]?.stringValue?.isEmpty != false {
            problems.append("\(what): 'state_topic' is required")
        }
        if let device = config["device"]?.objectValue.map(expand) {
            if device["identifiers"]?.arrayValue?.isEmpty != false && device["connections"] == nil {
                problems.append("\(what): the device needs identifiers")
            }
        } else if config["device"] != nil {
            problems.append("\(what): 'device' must be an object")
        }
        if config["origin"] != nil, config["origin"]?.objectValue.map(expand)?["name"]?.stringValue == nil {
            problems.append("\(what): the origin needs a name")
        }
        if let id = config["default_entity_id"]?.stringValue, !id.hasPrefix("\(platform).") {
            problems.append("\(what): default_entity_id '\(id)' is not in the \(platform) domain")
        }
        for entry in config["availability"]?.arrayValue ?? [] where entry["topic"]?.stringValue == nil {
            problems.append("\(what): every availability entry needs a topic")
        }
        if let seconds = config["expire_after"], (seconds.intValue ?? 0) <= 0 {
            problems.append("\(what): expire_after must be a positive integer")
        }
        let deviceClass = config["device_class"]?.stringValue
        switch platform {
        case "sensor":
            if let deviceClass {
                if let known = HomeAssistant.sensorClass(deviceClass) {
                    let unit = config["unit_of_measurement"]?.stringValue ?? ""
                    if !known.allows(unit: unit) { problems.append("\(what): unit '\(unit)' does not go with \(deviceClass)") }
                    if let stateClass = config["state_class"]?.stringValue, !known.stateClasses.contains(stateClass) {
                        problems.append("\(what): state_class \(stateClass) does not go with \(deviceClass)")
                    }
                } else {
                    problems.append("\(what): '\(deviceClass)' is not a sensor device class")
                }
            }
            if let stateClass = config["state_class"]?.stringValue, !HomeAssistant.stateClasses.contains(stateClass) {
                problems.append("\(what): '\(stateClass)' is not a state class")
            }
            if let precision = config["suggested_display_precision"], (precision.intValue ?? -1) < 0 {
                problems.append("\(what): suggested_display_precision must be a non-negative integer")
            }
        case "switch":
            if let deviceClass, !["outlet", "switch"].contains(deviceClass) {
                problems.append("\(what): '\(deviceClass)' is not a switch device class")
            }
        default:
            if let deviceClass, !HomeAssistant.binarySensorClasses.contains(deviceClass) {
                problems.append("\(what): '\(deviceClass)' is not a binary_sensor device class")
            }
        }
        return problems
    }
}
