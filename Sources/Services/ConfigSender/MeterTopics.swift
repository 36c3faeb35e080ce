import JSON
import MQTT
import RuleEngine

/// Each known meter's retained topics on the central broker, published only
/// when they change: its configuration state and, with Home Assistant, its
/// `problem` and the binary sensor that shows it. Remembers what it
/// published (one entry per known meter, dropped when the meter is
/// forgotten), so that an unchanged meter costs a comparison, not a publish.
struct MeterTopics {
    /// The service's status topic: the sensors' availability.
    let statusTopic: String
    /// The `problem` of each meter as published (retained) for Home Assistant.
    private(set) var publishedProblems: [String: String?] = [:]
    /// The digest of each meter's configuration state as published (retained).
    private(set) var publishedConfigurations: [String: Int] = [:]

    init(statusTopic: String) {
        self.statusTopic = statusTopic
    }

    /// The central broker may have lost them (a new connection): publish all again.
    mutating func forgetPublished() {
        publishedProblems.removeAll()
        publishedConfigurations.removeAll()
    }

    /// Publishes each meter's retained topics that changed: its configuration
    /// (`<root>/<id>/configuration`, `MeterConfigurationState`) and, with
    /// Home Assistant, its `problem` (`<root>/<id>/problem`) and, the first
    /// time, the binary sensor that shows it on the meter's device. With the
    /// status: at most as often, only on change. A meter forgotten (its
    /// discovery message removed: retired or excluded) has them cleared.
    mutating func publish(_ planner: ConfigPlanner, to transport: any ConfigSenderTransport) throws(MQTTError) {
        let programs = planner.programs
        let withProblems = programs.siteConfig.homeAssistant.enabled
        let problems = withProblems ? planner.problems : [:]  // computed: once per pass
        for id in planner.meters.keys.sorted() {
            if let state = planner.configurationState(id) {
                let digest = DiscoveryLedger.digest(state.payload)
                if publishedConfigurations[id] != digest {
                    _ = try transport.publishStatus(topic: MeterConfigurationState.topic(root: programs.rootTopic, id: id),
                                                    payload: state.payload)
                    publishedConfigurations[id] = digest
                }
            }
            guard withProblems, let problem = problems[id] else { continue }
            let known = publishedProblems[id]
            if let known, known == problem { continue }
            let stateTopic = "\(programs.rootTopic)/\(id)/problem"
            if known == nil {
                let config = problemConfig(id, programs)
                _ = try transport.publishStatus(topic: config.topic(prefix: programs.siteConfig.homeAssistant.discoveryPrefix),
                                                payload: config.payload)
            }
            var state: JSONObject = ["problem": .bool(problem != nil)]
            if let problem { state["reason"] = .string(problem) }
            _ = try transport.publishStatus(topic: stateTopic, payload: JSONValue.object(state).serialized())
            publishedProblems[id] = .some(problem)
        }
        for id in publishedConfigurations.keys.sorted() where planner.meters[id] == nil {
            _ = try transport.publishStatus(topic: MeterConfigurationState.topic(root: programs.rootTopic, id: id), payload: [])
            publishedConfigurations[id] = nil
        }
        for id in publishedProblems.keys.sorted() where problems[id] == nil {
            _ = try transport.publishStatus(topic: problemConfig(id, programs).topic(prefix: programs.siteConfig.homeAssistant.discoveryPrefix),
                                            payload: [])
            _ = try transport.publishStatus(topic: "\(programs.rootTopic)/\(id)/problem", payload: [])
            publishedProblems[id] = nil
        }
    }

    /// Meter `id`'s Problem sensor (`HomeAssistantEntityConfig.problem`).
    private func problemConfig(_ id: String, _ programs: ProgramSet) -> HomeAssistantEntityConfig {
        .problem(programs, id, stateTopic: "\(programs.rootTopic)/\(id)/problem", statusTopic: statusTopic)
    }
}
