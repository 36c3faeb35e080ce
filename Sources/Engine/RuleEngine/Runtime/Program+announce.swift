import Topics

/// Topics, discovery and Home Assistant configs, all from the rule metadata.
extension Program {
    /// Renders a device template for meter `id` with the site's variables.
    func render(_ template: Template, id: String, extra: [String: String] = [:]) -> String {
        template.render { name in variable(name, id: id, extra: extra) }
    }

    /// The value of template variable `name` for meter `id`.
    func variable(_ name: String, id: String, extra: [String: String] = [:]) -> String? {
        switch name {
        case "root": site.root
        case "id": id
        case "context": site.contexts[id]
        case "model": device.model
        case "manufacturer": device.manufacturer
        default: extra[name] ?? device.form(name, of: id)
        }
    }

    /// Whether template variable `name` has the same value for every meter.
    static func isConstant(_ name: String) -> Bool { ["root", "model", "manufacturer"].contains(name) }

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

    /// The Home Assistant node of meter `id`: its device's identifier, the
    /// node id of its discovery topics and the prefix of its entities'
    /// `unique_id`s (`<pack>_<id>`).
    public func homeAssistantNode(for id: String) -> String {
        Program.haSafe("\(packName)_\(id)")
    }

    /// The topic of meter `id`'s device config (`homeassistant.discovery: device`).
    public func homeAssistantDeviceTopic(for id: String) -> String {
        "\(site.config.homeAssistant.discoveryPrefix)/device/\(homeAssistantNode(for: id))/config"
    }

    /// The topic of one entity's config (`homeassistant.discovery: entity`).
    public func homeAssistantEntityTopic(for id: String, platform: String, object: String) -> String {
        "\(site.config.homeAssistant.discoveryPrefix)/\(platform)/\(homeAssistantNode(for: id))/\(object)/config"
    }

    /// Home Assistant MQTT discovery for meter `id`, in the site's form:
    /// - `device` (the default): one retained device config
    ///   (`<prefix>/device/<node>/config`) with every entity field of the
    ///   meter's enabled groups as a component under `cmps`;
    /// - `entity`: one retained config per such field
    ///   (`<prefix>/sensor/<node>/<field>/config`).
    ///
    /// Only what exists: nothing for an excluded meter, no clears for disabled
    /// groups. Removing what was announced before is the proxy's business: it
    /// knows what is retained on the broker (`DiscoveryLedger`).
    public func homeAssistantConfigs(for id: String, origin: Origin) -> [Outgoing] {
        guard !site.exclude.contains(id) else { return [] }
        let ha = site.config.homeAssistant
        let groups = site.groups(for: id)
        let node = homeAssistantNode(for: id)
        var components: [(object: String, platform: String, body: [UInt8])] = []
        for route in routes {
            let stateTopic = render(route.topic, id: id)
            let interval = route.intervalSetting.map { effectiveSetting($0, for: id) ?? 0 } ?? 0
            let expireAfter = interval > 0 ? Int((Double(interval * route.intervalSeconds) * ha.expireAfterFactor).rounded(.up)) : nil
            for field in route.fields where field.entity && (field.group < 0 || groups.contains(route.groups[field.group])) {
                let object = Program.haSafe(field.name)
                var w = JSONWriter(capacity: 512)
                w.field("name", field.label)
                w.field("unique_id", "\(node)_\(object)")
                // HA 2025.10 replaced object_id (deprecated, ignored from 2026.4)
                // by default_entity_id, which names the domain too.
                w.field("default_entity_id", "\(field.component).\(node)_\(object)".lowercased())
                w.field("state_topic", stateTopic)
                w.field("value_template", "{{ value_json.\(field.name) }}")
                if !field.unit.isEmpty { w.field("unit_of_measurement", field.unit) }
                if let dc = field.deviceClass { w.field("device_class", dc) }
                if let sc = field.stateClass { w.field("state_class", sc) }
                if let p = field.precision { w.field("suggested_display_precision", p) }
                if let expireAfter { w.field("expire_after", expireAfter) }
                components.append((object, field.component, w.bytes))
            }
        }
        components += switchComponents(for: id, node: node)
        guard !components.isEmpty else { return [] }
        switch ha.discovery {
        case .device:
            return [deviceConfig(for: id, components: components, origin: origin)]
        case .entity:
            return components.map { component in
                var w = JSONWriter(capacity: component.body.count + 512)
                w.beginObject()
                w.raw(component.body)
                w.homeAssistantAvailability(statusTopic: site.statusTopic)
                writeDevice(&w, id: id, node: node, key: "device")
                w.homeAssistantOrigin(origin, key: "origin")
                w.endObject()
                return Outgoing(topic: homeAssistantEntityTopic(for: id, platform: component.platform, object: component.object),
                                payload: w.bytes, retain: true, kind: .homeAssistant, device: id)
            }
        }
    }

    /// A device config that only removes components of meter `id` (each with
    /// nothing but its platform, as Home Assistant's device discovery wants),
    /// the others untouched.
    public func homeAssistantRemoval(for id: String, components: [(object: String, platform: String)], origin: Origin) -> Outgoing {
        deviceConfig(for: id, components: components.map { ($0.object, $0.platform, []) }, origin: origin)
    }

    /// The device config of meter `id` with `components` (a component with an
    /// empty body is a removal: its platform alone). A config that only
    /// removes carries no availability.
    private func deviceConfig(for id: String, components: [(object: String, platform: String, body: [UInt8])],
                              origin: Origin) -> Outgoing {
        var w = JSONWriter(capacity: 256 + components.reduce(0) { $0 + $1.body.count + 48 })
        w.beginObject()
        writeDevice(&w, id: id, node: homeAssistantNode(for: id), key: "dev")
        w.homeAssistantOrigin(origin, key: "o")
        if components.contains(where: { !$0.body.isEmpty }) { w.homeAssistantAvailability(statusTopic: site.statusTopic) }
        w.key("cmps")
        w.beginObject()
        for component in components {
            w.key(component.object)
            w.beginObject()
            w.field("p", component.platform)
            if !component.body.isEmpty { w.raw(component.body) }
            w.endObject()
        }
        w.endObject()
        w.endObject()
        return Outgoing(topic: homeAssistantDeviceTopic(for: id), payload: w.bytes, retain: true, kind: .homeAssistant, device: id)
    }

    private func writeDevice(_ w: inout JSONWriter, id: String, node: String, key: String) {
        w.key(key)
        w.beginObject()
        w.key("identifiers")
        w.beginArray()
        w.string(node)
        w.endArray()
        w.field("name", site.contexts[id] ?? device.name.map { render($0, id: id) } ?? id)
        if !device.manufacturer.isEmpty { w.field("manufacturer", device.manufacturer) }
        if !device.model.isEmpty { w.field("model", device.model) }
        w.field("serial_number", id)
        if let loop = site.loops[id], loop.index != 0 { w.field("via_device", homeAssistantNode(for: loop.base)) }
        w.endObject()
    }

    /// Home Assistant node and object ids allow `[a-zA-Z0-9_-]`.
    package static func haSafe(_ s: String) -> String {
        Topic.plainName(s)
    }
}
