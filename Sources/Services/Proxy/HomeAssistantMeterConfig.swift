import JSON
import RuleEngine

/// A meter's Home Assistant config as the proxy reads it back from the
/// broker (retained) or from its own plan: the meter it is about and its
/// live components. The one parser of the configs the engine writes
/// (`Program.homeAssistantConfigs`), in the device form (`dev`, `o`,
/// `cmps`) and the per-entity form (`device`, `origin`), with Home
/// Assistant's abbreviations or without (`sn`, `ids`, `p`), since what is
/// retained may come from another version.
struct HomeAssistantMeterConfig {
    /// The origin's name (`kpm33b-proxy`), if the config has one.
    var origin: String?
    /// The device's serial number when its first identifier is the meter's node (`<root>_<id>`).
    var meter: String?
    /// Object → platform of the live components; one with nothing but its
    /// platform is a removal, not a component.
    var components: [String: String]

    /// nil when the payload is not a JSON object.
    init?(payload: [UInt8]) {
        guard let config = (try? JSONValue.parse(payload))?.objectValue else { return nil }
        origin = (config["o"] ?? config["origin"])?.objectValue?["name"]?.stringValue
        let device = (config["dev"] ?? config["device"])?.objectValue
        if let id = (device?["serial_number"] ?? device?["sn"])?.stringValue, !id.isEmpty,
           let node = (device?["identifiers"] ?? device?["ids"])?.arrayValue?.first?.stringValue, node.hasSuffix("_" + Program.haSafe(id)) {
            meter = id
        }
        components = [:]
        for (object, value) in (config["cmps"] ?? config["components"])?.objectValue ?? [:] {
            guard let component = value.objectValue, let platform = (component["p"] ?? component["platform"])?.stringValue,
                  component.count > 1 else { continue }
            components[object] = platform
        }
    }

    /// The meter, if the config is one that `origin` published.
    func meter(publishedBy origin: String) -> String? { self.origin == origin ? meter : nil }
}
