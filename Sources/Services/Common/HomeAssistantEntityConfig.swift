import JSON
import RuleEngine

/// One Home Assistant entity that a service announces itself (per-entity
/// MQTT discovery, `<prefix>/<component>/<node>/<object>/config`, retained):
/// the sensors of its health device (`HealthDevice`) and each meter's
/// Problem sensor (`problem(…)`). One writer for both; the meters' own
/// entities are the engine's (`Program.homeAssistantConfigs`), which has no
/// JSON adapter and writes them itself.
///
/// Every such entity is unavailable while the service's status says
/// `offline` (`availability` on `statusTopic`).
struct HomeAssistantEntityConfig {
    var component: String  // sensor | binary_sensor
    var node: String
    var object: String
    var name: String
    var stateTopic: String
    var template: String
    /// More fields (`device_class`, `state_class`, `json_attributes_template` …).
    var extra: JSONObject = [:]
    /// The status topic the entity's availability follows.
    var statusTopic: String
    /// The device it belongs to: its identifiers and, for a device the service owns, its name and model.
    var device: JSONObject
    var origin: Origin

    /// `<prefix>/<component>/<node>/<object>/config`.
    func topic(prefix: String) -> String { "\(prefix)/\(component)/\(node)/\(object)/config" }

    var payload: [UInt8] {
        var config: JSONObject = [
            "name": .string(name),
            "unique_id": .string("\(node)_\(object)"),
            "default_entity_id": .string("\(component).\(node)_\(object)".lowercased()),
            "state_topic": .string(stateTopic),
            "value_template": .string(template),
        ]
        for (key, value) in extra { config[key] = value }
        if config["json_attributes_template"] != nil { config["json_attributes_topic"] = .string(stateTopic) }
        let availability: JSONObject = [
            "topic": .string(statusTopic), "value_template": "{{ value_json.state }}",
            "payload_available": "online", "payload_not_available": "offline",
        ]
        config["availability"] = .array([.object(availability)])
        config["device"] = .object(device)
        config["origin"] = ["name": .string(origin.name), "sw_version": .string(origin.version)]
        return JSONValue.object(config).serialized()
    }

    /// Meter `id`'s Problem sensor, on the meter's own device (the proxy's
    /// identifiers), from config-sender's `<root>/<id>/problem`.
    static func problem(_ program: ProgramSet, _ id: String, stateTopic: String, statusTopic: String) -> HomeAssistantEntityConfig {
        let node = program.homeAssistantNode(for: id)
        return HomeAssistantEntityConfig(
            component: "binary_sensor", node: node, object: "problem", name: "Problem", stateTopic: stateTopic,
            template: "{{ 'ON' if value_json.problem else 'OFF' }}",
            extra: ["device_class": "problem", "json_attributes_template": "{{ {'reason': value_json.reason | default('')} | tojson }}"],
            statusTopic: statusTopic, device: ["identifiers": [.string(node)]],
            origin: Origin(name: "config-sender", version: ServiceVersion.current))
    }
}
