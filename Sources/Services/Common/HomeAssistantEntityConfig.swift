import RuleEngine

/// One Home Assistant entity that a service announces itself (per-entity
/// MQTT discovery, `<prefix>/<component>/<node>/<object>/config`, retained):
/// the sensors of its health device (`HealthDevice`) and each meter's
/// Problem sensor (`problem(…)`). Written by the engine's `JSONWriter`, the
/// writer of the meters' own configs (`Program.homeAssistantConfigs`), with
/// the same origin and availability members: key order, escaping and
/// numbers are the same in every config.
///
/// Every such entity is unavailable while the service's status says
/// `offline` (`availability` on `statusTopic`).
struct HomeAssistantEntityConfig {
    /// The device an entity belongs to: its identifiers and, for a device the
    /// service owns, its name, model and version.
    struct Device {
        var identifiers: [String]
        var name: String? = nil
        var model: String? = nil
        var version: String? = nil
    }

    var component: String  // sensor | binary_sensor
    var node: String
    var object: String
    var name: String
    var stateTopic: String
    var template: String
    /// More fields (`device_class`, `state_class`, `json_attributes_template` …), written sorted by key.
    var extra: [String: String] = [:]
    /// The status topic the entity's availability follows.
    var statusTopic: String
    var device: Device
    var origin: Origin

    /// `<prefix>/<component>/<node>/<object>/config`.
    func topic(prefix: String) -> String { "\(prefix)/\(component)/\(node)/\(object)/config" }

    var payload: [UInt8] {
        var w = JSONWriter(capacity: 768)
        w.beginObject()
        w.field("name", name)
        w.field("unique_id", "\(node)_\(object)")
        w.field("default_entity_id", "\(component).\(node)_\(object)".lowercased())
        w.field("state_topic", stateTopic)
        w.field("value_template", template)
        for (key, value) in extra.sorted(by: { $0.key < $1.key }) { w.field(key, value) }
        if extra["json_attributes_template"] != nil { w.field("json_attributes_topic", stateTopic) }
        w.homeAssistantAvailability(statusTopic: statusTopic)
        w.key("device")
        w.beginObject()
        w.key("identifiers")
        w.beginArray()
        for identifier in device.identifiers { w.string(identifier) }
        w.endArray()
        if let name = device.name { w.field("name", name) }
        if let model = device.model { w.field("model", model) }
        if let version = device.version { w.field("sw_version", version) }
        w.endObject()
        w.homeAssistantOrigin(origin, key: "origin")
        w.endObject()
        return w.bytes
    }
    /// Meter `id`'s Problem sensor, on the meter's own device (the proxy's
    /// identifiers), from config-sender's `<root>/<id>/problem`.
    static func problem(_ programs: ProgramSet, _ id: String, stateTopic: String, statusTopic: String) -> HomeAssistantEntityConfig {
        let node = programs.homeAssistantNode(for: id)
        return HomeAssistantEntityConfig(
            component: "binary_sensor", node: node, object: "problem", name: "Problem", stateTopic: stateTopic,
            template: "{{ 'ON' if value_json.problem else 'OFF' }}",
            extra: ["device_class": "problem", "json_attributes_template": "{{ {'reason': value_json.reason | default('')} | tojson }}"],
            statusTopic: statusTopic, device: Device(identifiers: [node]),
            origin: Origin(name: "config-sender", version: ServiceVersion.current))
    }
}
