import RuleEngine

/// A service as a device in Home Assistant, the way Zigbee2MQTT shows its
/// bridge: its sensors read the service's retained status document, so they
/// cost nothing beyond the status it publishes anyway, and they are
/// unavailable exactly when the status says `offline` (also the service's
/// last will).
///
/// Per-entity discovery (`<prefix>/<component>/<node>/<object>/config`,
/// retained), like the meters' entities; `unique_id`s start with the node:
/// `<root>_proxy` (`proxy`) or `<root>_config_sender` (`configSender`).
struct HealthDevice {
    struct Entity {
        var component: String  // sensor | binary_sensor
        var object: String
        var name: String
        var template: String
        var extra: [String: String] = [:]
    }

    /// `proxy` or `config_sender`: the node is `<root>_<service>`.
    let service: String
    let model: String
    let entities: [Entity]

    static let proxy = HealthDevice(service: "proxy", model: "kpm33b-proxy", entities: [
        Entity(component: "sensor", object: "meters_seen", name: "Meters seen",
               template: "{{ value_json.meters_seen }}",
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
        Entity(component: "sensor", object: "readings_qos0", name: "Readings at QoS 0",
               template: "{{ value_json.counters.received_qos0 }}",
               extra: ["state_class": "total_increasing", "icon": "mdi:alert-circle-outline"]),
        // The meters' broker's own figures ($SYS, whole broker), unknown until it published them.
        Entity(component: "sensor", object: "internal_broker_dropped", name: "Meters' broker messages dropped",
               template: "{{ value_json.internal_broker.dropped if value_json.internal_broker.dropped is number else None }}",
               extra: ["state_class": "total_increasing", "icon": "mdi:delete-alert"]),
        Entity(component: "sensor", object: "internal_broker_stored", name: "Meters' broker messages stored",
               template: "{{ value_json.internal_broker.stored_messages if value_json.internal_broker.stored_messages is number else None }}",
               extra: ["state_class": "measurement", "icon": "mdi:database"]),
        Entity(component: "binary_sensor", object: "internal_broker", name: "Meters' broker",
               template: "{{ 'ON' if value_json.connections.internal == 'connected' else 'OFF' }}",
               extra: ["device_class": "connectivity"]),
        Entity(component: "binary_sensor", object: "central_broker", name: "Central broker",
               template: "{{ 'ON' if value_json.connections.central == 'connected' else 'OFF' }}",
               extra: ["device_class": "connectivity"]),
        Entity(component: "binary_sensor", object: "back_pressure", name: "Back-pressure",
               template: "{{ 'ON' if value_json.journal.back_pressure else 'OFF' }}",
               extra: ["device_class": "problem"]),
        // What needs an operator (the meter limit reached, …), listed as an attribute.
        Entity(component: "binary_sensor", object: "problem", name: "Problem",
               template: "{{ 'ON' if value_json.problems | default([]) | count > 0 else 'OFF' }}",
               extra: ["device_class": "problem",
                       "json_attributes_template": "{{ {'problems': value_json.problems | default([])} | tojson }}"]),
    ])

    static let configSender = HealthDevice(service: "config_sender", model: "config-sender", entities: [
        Entity(component: "sensor", object: "meters_known", name: "Meters known",
               template: "{{ value_json.meters_known }}", extra: ["state_class": "measurement", "icon": "mdi:counter"]),
        Entity(component: "sensor", object: "meters_configured", name: "Meters configured",
               template: "{{ value_json.meters_configured }}", extra: ["state_class": "measurement", "icon": "mdi:check-all"]),
        Entity(component: "sensor", object: "meters_failed", name: "Meters failed",
               template: "{{ value_json.meters_failed }}", extra: ["state_class": "measurement", "icon": "mdi:alert"]),
        Entity(component: "sensor", object: "pending_commands", name: "Commands pending",
               template: "{{ value_json.pending_commands }}", extra: ["state_class": "measurement", "icon": "mdi:timer-sand"]),
        Entity(component: "sensor", object: "alerts", name: "Alerts",
               template: "{{ value_json.alerts_total }}",
               extra: ["state_class": "measurement", "icon": "mdi:alert-octagon",
                       "json_attributes_template": "{{ {'alerts': value_json.alerts} | tojson }}"]),
        Entity(component: "binary_sensor", object: "internal_broker", name: "Meters' broker",
               template: "{{ 'ON' if value_json.connections.internal == 'connected' else 'OFF' }}",
               extra: ["device_class": "connectivity"]),
    ])

    /// The retained discovery messages of the service's own entities, whose
    /// status is on `statusTopic`.
    func configs(program: Program, statusTopic status: String, origin: Origin) -> [(topic: String, payload: [UInt8])] {
        let ha = program.siteConfig.homeAssistant
        let node = Program.haSafe("\(program.rootTopic)_\(service)" + (program.instance.map { "_\($0)" } ?? ""))
        let device = HomeAssistantEntityConfig.Device(identifiers: [node], name: origin.name + (program.instance.map { " \($0)" } ?? ""),
                                                      model: model, version: origin.version)
        return entities.map { entity in
            let config = HomeAssistantEntityConfig(
                component: entity.component, node: node, object: entity.object, name: entity.name, stateTopic: status,
                template: entity.template, extra: entity.extra, statusTopic: status, device: device, origin: origin)
            return (config.topic(prefix: ha.discoveryPrefix), config.payload)
        }
    }
}
