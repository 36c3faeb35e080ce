import JSON
import RuleEngine

/// The proxy as a device in Home Assistant, the way Zigbee2MQTT shows its
/// bridge: its sensors read the retained status document (`kpm33b/status`),
/// so they cost nothing beyond the status the proxy publishes anyway, and
/// they are unavailable exactly when the status says `offline` (also the
/// proxy's last will).
///
/// Per-entity discovery (`<prefix>/<component>/<node>/<object>/config`,
/// retained), like the meters' entities; `unique_id`s start with the node,
/// `<root>_proxy`.
enum ProxyHealth {
    struct Entity {
        var component: String  // sensor | binary_sensor
        var object: String
        var name: String
        var template: String
        var extra: JSONObject = [:]
    }

    static let entities: [Entity] = [
        Entity(component: "sensor", object: "meters_seen", name: "Meters seen",
               template: "{{ value_json.meters | count }}",
               extra: ["state_class": "measurement", "icon": "mdi:counter"]),
        Entity(component: "sensor", object: "meters_online", name: "Meters online",
               template: "{{ value_json.meters_online }}",
               extra: ["state_class": "measurement", "icon": "mdi:lan-connect"]),
        Entity(component: "sensor", object: "forwarded_per_minute", name: "Readings forwarded per minute",
               template: "{{ value_json.forwarded_per_minute }}",
               extra: ["state_class": "measurement", "unit_of_measurement": "msg/min", "icon": "mdi:transfer-right"]),
        Entity(component: "sensor", object: "dropped", name: "Readings dropped",
               template: "{{ value_json.counters.dropped.values() | sum }}",
               extra: ["state_class": "total_increasing", "icon": "mdi:delete-alert",
                       // Each reason as an attribute: all_zero, duplicate, invalid_time …
                       "json_attributes_template": "{{ value_json.counters.dropped | tojson }}"]),
        Entity(component: "sensor", object: "journal_messages", name: "Journal messages",
               template: "{{ value_json.journal.messages }}",
               extra: ["state_class": "measurement", "icon": "mdi:tray-full"]),
        Entity(component: "sensor", object: "journal_oldest_age", name: "Oldest unacknowledged message",
               template: "{{ value_json.journal.oldest_unacknowledged_age_s | default(0, true) }}",
               extra: ["state_class": "measurement", "device_class": "duration", "unit_of_measurement": "s"]),
        Entity(component: "binary_sensor", object: "internal_broker", name: "Meters' broker",
               template: "{{ 'ON' if value_json.connections.internal == 'connected' else 'OFF' }}",
               extra: ["device_class": "connectivity"]),
        Entity(component: "binary_sensor", object: "central_broker", name: "Central broker",
               template: "{{ 'ON' if value_json.connections.central == 'connected' else 'OFF' }}",
               extra: ["device_class": "connectivity"]),
        Entity(component: "binary_sensor", object: "back_pressure", name: "Back-pressure",
               template: "{{ 'ON' if value_json.journal.back_pressure else 'OFF' }}",
               extra: ["device_class": "problem"]),
    ]

    /// The retained discovery messages of the proxy's own entities.
    static func configs(program: Program, origin: Origin) -> [(topic: String, payload: [UInt8])] {
        let ha = program.siteConfig.homeAssistant
        let node = Program.haSafe("\(program.rootTopic)_proxy")
        let status = program.statusTopic
        return entities.map { entity in
            var config: JSONObject = [
                "name": .string(entity.name),
                "unique_id": .string("\(node)_\(entity.object)"),
                "default_entity_id": .string("\(entity.component).\(node)_\(entity.object)".lowercased()),
                "state_topic": .string(status),
                "value_template": .string(entity.template),
            ]
            for (key, value) in entity.extra { config[key] = value }
            if config["json_attributes_template"] != nil { config["json_attributes_topic"] = .string(status) }
            let availability: JSONObject = [
                "topic": .string(status), "value_template": "{{ value_json.state }}",
                "payload_available": "online", "payload_not_available": "offline",
            ]
            config["availability"] = .array([.object(availability)])
            config["device"] = [
                "identifiers": [.string(node)],
                "name": .string(origin.name),
                "model": "kpm33b-proxy",
                "sw_version": .string(origin.version),
            ]
            config["origin"] = ["name": .string(origin.name), "sw_version": .string(origin.version)]
            let topic = "\(ha.discoveryPrefix)/\(entity.component)/\(node)/\(entity.object)/config"
            return (topic, JSONValue.object(config).serialized())
        }
    }
}
