import Topics

/// Topics, discovery and Home Assistant configs, all from the rule metadata.
extension Program {
    /// Renders a device template for meter `id` with the site's variables.
    func render(_ template: Template, id: String, extra: [String: String] = [:]) -> String {
        template.render { name in
            switch name {
            case "root": site.root
            case "id": id
            case "context": site.contexts[id]
            case "model": device.model
            case "manufacturer": device.manufacturer
            default: extra[name] ?? device.form(name, of: id)
            }
        }
    }

    /// The discovery topic of meter `id`, if the pack has discovery.
    public func discoveryTopic(for id: String) -> String? {
        discoveryTopic.map { render($0, id: id) }
    }

    /// How long meter `id` may stay silent before it counts as offline: its
    /// shortest upload interval times the site's `expire_after_factor` (what
    /// its Home Assistant entities use as `expire_after`); nil when no route
    /// has an interval.
    public func silenceAllowed(for id: String) -> Int? {
        let factor = site.config.homeAssistant.expireAfterFactor
        let seconds = routes.compactMap { route -> Int? in
            guard let setting = route.intervalSetting, let interval = effectiveSetting(setting, for: id), interval > 0 else { return nil }
            return Int((Double(interval * route.intervalSeconds) * factor).rounded(.up))
        }
        return seconds.min()
    }

    /// Home Assistant MQTT discovery configs for meter `id`: one retained
    /// config per entity field of an enabled group, and an empty retained
    /// payload (which deletes the entity) for every field of a disabled group
    /// or, when the meter is excluded, for every field.
    public func homeAssistantConfigs(for id: String, origin: Origin) -> [Outgoing] {
        let ha = site.config.homeAssistant
        let groups = site.groups(for: id)
        let excluded = site.exclude.contains(id)
        let node = Program.haSafe("\(packName)_\(id)")
        let deviceName = site.contexts[id] ?? device.name.map { render($0, id: id) } ?? id
        var out: [Outgoing] = []
        for route in routes {
            let stateTopic = render(route.topic, id: id)
            let interval = route.intervalSetting.map { effectiveSetting($0, for: id) ?? 0 } ?? 0
            let expireAfter = interval > 0 ? Int((Double(interval * route.intervalSeconds) * ha.expireAfterFactor).rounded(.up)) : nil
            for field in route.fields where field.entity {
                let topic = "\(ha.discoveryPrefix)/sensor/\(node)/\(Program.haSafe(field.name))/config"
                let enabled = !excluded && (field.group < 0 || groups.contains(route.groups[field.group]))
                guard enabled else {
                    out.append(Outgoing(topic: topic, payload: [], retain: true, kind: .homeAssistant))
                    continue
                }
                var w = JSONWriter(capacity: 768)
                w.beginObject()
                w.field("name", field.label)
                w.field("unique_id", "\(node)_\(Program.haSafe(field.name))")
                // HA 2025.10 replaced object_id (deprecated, ignored from 2026.4)
                // by default_entity_id, which names the domain too.
                w.field("default_entity_id", "sensor.\(node)_\(Program.haSafe(field.name))".lowercased())
                w.field("state_topic", stateTopic)
                w.field("value_template", "{{ value_json.\(field.name) }}")
                if !field.unit.isEmpty { w.field("unit_of_measurement", field.unit) }
                if let dc = field.deviceClass { w.field("device_class", dc) }
                if let sc = field.stateClass { w.field("state_class", sc) }
                if let p = field.precision { w.field("suggested_display_precision", p) }
                if let expireAfter { w.field("expire_after", expireAfter) }
                w.key("availability")
                w.beginArray()
                w.beginObject()
                w.field("topic", site.statusTopic)
                w.field("value_template", "{{ value_json.state }}")
                w.field("payload_available", "online")
                w.field("payload_not_available", "offline")
                w.endObject()
                w.endArray()
                w.key("device")
                w.beginObject()
                w.key("identifiers")
                w.beginArray()
                w.string(node)
                w.endArray()
                w.field("name", deviceName)
                if !device.manufacturer.isEmpty { w.field("manufacturer", device.manufacturer) }
                if !device.model.isEmpty { w.field("model", device.model) }
                w.field("serial_number", id)
                w.endObject()
                w.key("origin")
                w.beginObject()
                w.field("name", origin.name)
                w.field("sw_version", origin.version)
                if let url = origin.url { w.field("support_url", url) }
                w.endObject()
                w.endObject()
                out.append(Outgoing(topic: topic, payload: w.bytes, retain: true, kind: .homeAssistant))
            }
        }
        return out
    }

    /// Home Assistant node and object ids allow `[a-zA-Z0-9_-]`.
    package static func haSafe(_ s: String) -> String {
        Topic.plainName(s)
    }
}
