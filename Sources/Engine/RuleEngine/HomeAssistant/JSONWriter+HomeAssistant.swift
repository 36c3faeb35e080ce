/// The members every Home Assistant discovery config carries, written the
/// same way for the meters' configs (`Program.homeAssistantConfigs`) and the
/// services' own entities.
extension JSONWriter {
    /// `"<key>":{"name":…,"sw_version":…[,"support_url":…]}`.
    public mutating func homeAssistantOrigin(_ origin: Origin, key: String) {
        self.key(key)
        beginObject()
        field("name", origin.name)
        field("sw_version", origin.version)
        if let url = origin.url { field("support_url", url) }
        endObject()
    }

    /// `"availability"`: the entities are unavailable while the status on
    /// `statusTopic` says `offline`.
    public mutating func homeAssistantAvailability(statusTopic: String) {
        key("availability")
        beginArray()
        beginObject()
        field("topic", statusTopic)
        field("value_template", "{{ value_json.state }}")
        field("payload_available", "online")
        field("payload_not_available", "offline")
        endObject()
        endArray()
    }
}
