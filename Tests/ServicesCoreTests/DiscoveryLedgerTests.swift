import Foundation
import JSON
import RuleEngine
import SiteSettings
import Testing
@testable import Services
@testable import ServicesFixtures

/// The ledger of retained announcements and the convergence it plans, with
/// the real pack and no broker; and every Home Assistant config the services
/// publish, checked against Home Assistant's schemas.
@Suite struct DiscoveryLedgerTests {
    static let meter = "33B1225950027"
    static let origin = Origin(name: "kpm33b-proxy", version: "test")
    static let deviceTopic = "homeassistant/device/kpm33b_33B1225950027/config"

    static func program(groups: [String], discovery: String = "device", exclude: [String] = []) throws -> Program {
        let directory = try senderTemporaryDirectory("ledger")
        defer { try? FileManager.default.removeItem(at: directory) }
        return try loadProgram("""
            root_topic: kpm33b
            homeassistant: { enabled: true, discovery: \(discovery) }
            meters:
              defaults:
                groups: [\(groups.joined(separator: ", "))]
                settings: { upload_interval_seconds: 60, upload_interval_minutes: 5 }
            exclude: [\(exclude.map { "\"\($0)\"" }.joined(separator: ", "))]

            """, in: directory.path)
    }

    static func ledger() -> DiscoveryLedger {
        DiscoveryLedger(discoveryFilters: ["kpm33b/discovery/+"], discoveryPrefix: "homeassistant", originName: origin.name)
    }

    static func text(_ message: Outgoing) -> String { String(decoding: message.payload, as: UTF8.self) }

    // MARK: Reading configs back

    /// The ledger's one parser of a meter's config reads what the engine
    /// writes, in both forms; a config of another origin is not the proxy's.
    @Test func theLedgerReadsTheConfigsTheEngineWrites() throws {
        for discovery in ["device", "entity"] {
            let program = try Self.program(groups: ["current", "power"], discovery: discovery)
            let configs = program.homeAssistantConfigs(for: Self.meter, origin: Self.origin)
            #expect(!configs.isEmpty)
            for config in configs {
                let parsed = try #require(HomeAssistantMeterConfig(payload: config.payload))
                #expect(parsed.meter(publishedBy: Self.origin.name) == Self.meter)
                #expect(parsed.meter(publishedBy: "another-proxy") == nil)
                let written = try JSONValue.parse(config.payload)["cmps"]?.objectValue
                #expect(parsed.components.count == written?.count ?? 0, "\(Self.text(config))")
                #expect(discovery == "entity" || parsed.components.values.contains("sensor"))
            }
        }
        // A removal: its components are gone, the meter is still named.
        let program = try Self.program(groups: ["current"])
        let removal = try #require(HomeAssistantMeterConfig(payload: program.homeAssistantRemoval(
            for: Self.meter, components: [("current_l1", "sensor")], origin: Self.origin).payload))
        #expect(removal.components.isEmpty)
        #expect(removal.meter(publishedBy: Self.origin.name) == Self.meter)
        #expect(HomeAssistantMeterConfig(payload: Array("[1]".utf8)) == nil)
        #expect(HomeAssistantMeterConfig(payload: Array("{".utf8)) == nil)
    }

    // MARK: Schemas

    @Test func everyConfigTheServicesPublishIsValidHomeAssistantDiscovery() throws {
        var checked = 0
        for discovery in ["device", "entity"] {
            let program = try Self.program(groups: ["current", "power", "power_factor", "voltage"], discovery: discovery)
            for config in program.homeAssistantConfigs(for: Self.meter, origin: Self.origin) {
                #expect(HomeAssistantSchema.problems(topic: config.topic, payload: config.payload) == [])
                checked += 1
            }
            let removal = program.homeAssistantRemoval(for: Self.meter, components: [("old_field", "sensor")], origin: Self.origin)
            #expect(HomeAssistantSchema.problems(topic: removal.topic, payload: removal.payload) == [])
            for device in [HealthDevice.proxy, HealthDevice.configSender] {
                for config in device.configs(program: program, statusTopic: "kpm33b/status", origin: Self.origin) {
                    #expect(HomeAssistantSchema.problems(topic: config.topic, payload: config.payload) == [])
                    checked += 1
                }
            }
            let problem = HomeAssistantEntityConfig.problem(ProgramSet(single: program), Self.meter, stateTopic: "kpm33b/\(Self.meter)/problem",
                                                            statusTopic: "kpm33b/config-sender/status")
            #expect(problem.topic(prefix: "homeassistant") == "homeassistant/binary_sensor/kpm33b_\(Self.meter)/problem/config")
            #expect(HomeAssistantSchema.problems(topic: problem.topic(prefix: "homeassistant"), payload: problem.payload) == [])
        }
        #expect(checked > 30)
        // The checker can fail: a key no sensor has, a unit the class refuses.
        let bad = Array(#"{"dev":{"ids":["x"]},"o":{"name":"t"},"cmps":{"a":{"p":"sensor","unique_id":"a","state_topic":"t","colour":"red","device_class":"power","unit_of_measurement":"kWh"}}}"#.utf8)
        #expect(HomeAssistantSchema.problems(topic: "homeassistant/device/x/config", payload: bad).count == 2)
    }

    /// Every Home Assistant config in the golden outputs of every pack (all
    /// models, both forms, several packs at once) passes the schemas too.
    @Test func everyGoldenHomeAssistantConfigIsValid() throws {
        let rules = URL(fileURLWithPath: senderPackPath).deletingLastPathComponent()
        var files: [URL] = []
        for pack in try FileManager.default.contentsOfDirectory(atPath: rules.path).sorted() {
            let tests = rules.appendingPathComponent(pack == "tests" ? "tests" : "\(pack)/tests")
            for name in (try? FileManager.default.contentsOfDirectory(atPath: tests.path)) ?? [] where name.hasSuffix(".out") {
                files.append(tests.appendingPathComponent(name))
            }
        }
        var checked = 0
        var platforms: Set<String> = []
        for file in files {
            for line in try String(contentsOf: file, encoding: .utf8).split(separator: "\n") where line.hasPrefix("+ homeassistant/") {
                let parts = line.dropFirst(2).split(separator: " ", maxSplits: 1)
                guard parts.count == 2 else { continue }  // a removal
                let problems = HomeAssistantSchema.problems(topic: String(parts[0]), payload: Array(parts[1].utf8))
                #expect(problems == [], "\(file.lastPathComponent)")
                for platform in ["sensor", "binary_sensor", "switch"] where parts[1].contains(#""p":"\#(platform)""#) {
                    platforms.insert(platform)
                }
                checked += 1
            }
        }
        #expect(checked >= 6)
        #expect(platforms == ["sensor", "binary_sensor", "switch"], "every kind of component is checked")
    }

    @Test func aDeviceConfigCarriesEveryEntityOfTheEnabledGroupsAndNothingElse() throws {
        let program = try Self.program(groups: ["current"])
        let configs = program.homeAssistantConfigs(for: Self.meter, origin: Self.origin)
        #expect(configs.map(\.topic) == [Self.deviceTopic])
        let json = try #require(try JSONValue.parse(configs[0].payload).objectValue)
        let components = try #require(json["cmps"]?.objectValue)
        #expect(components.keys == ["active_power", "current_l1", "current_l2", "current_l3", "active_energy"])
        #expect(components["active_energy"]?["state_class"] == "total_increasing")
        #expect(json["dev"]?["serial_number"] == .string(Self.meter))
        #expect(json["o"]?["name"] == "kpm33b-proxy")
        // An excluded meter has nothing to announce.
        #expect(try Self.program(groups: ["current"], exclude: [Self.meter]).homeAssistantConfigs(for: Self.meter, origin: Self.origin).isEmpty)
    }

    // MARK: Convergence

    /// A field renamed or a group disabled since the broker got the config:
    /// the lost component is removed first, then the config is sent whole;
    /// once converged, nothing more goes out.
    @Test func aLostComponentIsRemovedThenTheConfigSentOnce() throws {
        let before = try Self.program(groups: ["current", "power"])
        let after = try Self.program(groups: ["current"])
        var ledger = Self.ledger()
        let old = try #require(before.homeAssistantConfigs(for: Self.meter, origin: Self.origin).first)
        ledger.observe(topic: old.topic, payload: old.payload)
        #expect(ledger.meters[Self.meter]?.device?.components.count == 8)

        let wanted = after.homeAssistantConfigs(for: Self.meter, origin: Self.origin)
        let plan = ledger.plan(id: Self.meter, discovery: nil, homeAssistant: wanted, forced: false, program: after, origin: Self.origin)
        #expect(plan.map(\.topic) == [Self.deviceTopic, Self.deviceTopic])
        let removal = try #require(try JSONValue.parse(plan[0].payload).objectValue)
        #expect(removal["cmps"] == ["active_power_l1": ["p": "sensor"], "active_power_l2": ["p": "sensor"], "active_power_l3": ["p": "sensor"]])
        #expect(plan[1] == wanted[0])

        #expect(ledger.plan(id: Self.meter, discovery: nil, homeAssistant: wanted, forced: false, program: after, origin: Self.origin) == [])
        // Home Assistant came online: the config again, and only it.
        #expect(ledger.plan(id: Self.meter, discovery: nil, homeAssistant: wanted, forced: true, program: after, origin: Self.origin) == wanted)
        // The broker echoes the removal, then the config: still converged.
        ledger.observe(topic: plan[0].topic, payload: plan[0].payload)
        ledger.observe(topic: plan[1].topic, payload: plan[1].payload)
        #expect(ledger.plan(id: Self.meter, discovery: nil, homeAssistant: wanted, forced: false, program: after, origin: Self.origin) == [])
    }

    /// 500 meters with one set of groups, read back and planned: the ledger
    /// keeps one component set for all of them (one string, not 500), and
    /// each meter still has its own components; a second set of groups
    /// makes a second set.
    @Test func metersWithTheSameGroupsShareOneComponentSet() throws {
        let program = try Self.program(groups: ["current", "power"])
        var ledger = Self.ledger()
        let ids = (0..<500).map { "33B" + String(1_000_000_000 + $0) }
        for id in ids.prefix(250) {
            let config = try #require(program.homeAssistantConfigs(for: id, origin: Self.origin).first)
            ledger.observe(topic: config.topic, payload: config.payload)
        }
        for id in ids.dropFirst(250) {
            _ = ledger.plan(id: id, discovery: nil, homeAssistant: program.homeAssistantConfigs(for: id, origin: Self.origin),
                            forced: false, program: program, origin: Self.origin)
        }
        #expect(ledger.componentSetCount == 1)
        #expect(ids.allSatisfy { ledger.meters[$0]?.device?.components.count == 8 })
        #expect(ledger.ownersCount == 0, "the topics name their meters: no table of them")
        #expect(ledger.topicFormCount == 1, "500 device topics kept as one form and their ids")
        // An empty retained payload (a config cleared by another hand) finds its meter by the topic.
        ledger.observe(topic: program.homeAssistantDeviceTopic(for: ids[7]), payload: [])
        #expect(ledger.meters[ids[7]]?.device == nil && ledger.meters[ids[8]]?.device != nil)
        // A config of ours at a topic that does not name its meter is looked up in a table.
        let elsewhere = "homeassistant/device/elsewhere/config"
        let config = try #require(program.homeAssistantConfigs(for: ids[9], origin: Self.origin).first)
        ledger.observe(topic: elsewhere, payload: config.payload)
        #expect(ledger.ownersCount == 1 && ledger.meters[ids[9]]?.device?.topic == .own(elsewhere))
        ledger.observe(topic: elsewhere, payload: [])
        #expect(ledger.ownersCount == 0 && ledger.meters[ids[9]]?.device == nil)
        let other = try Self.program(groups: ["current"])
        _ = ledger.plan(id: ids[0], discovery: nil, homeAssistant: other.homeAssistantConfigs(for: ids[0], origin: Self.origin),
                        forced: false, program: other, origin: Self.origin)
        #expect(ledger.componentSetCount == 2)
        #expect(ledger.meters[ids[0]]?.device?.components.count == 5 && ledger.meters[ids[1]]?.device?.components.count == 8)
    }

    /// Nothing is cleared that the broker does not hold as ours: not a group
    /// never announced, not a meter never seen, not another program's config.
    @Test func noClearForWhatWasNeverAnnounced() throws {
        let program = try Self.program(groups: ["current"], discovery: "entity")
        var ledger = Self.ledger()
        let foreign = Array(#"{"name":"x","unique_id":"kpm33b_33B1225950028_x","state_topic":"t","device":{"identifiers":["kpm33b_33B1225950028"],"serial_number":"33B1225950028"},"origin":{"name":"someone-else"}}"#.utf8)
        ledger.observe(topic: "homeassistant/sensor/kpm33b_33B1225950028/x/config", payload: foreign)
        #expect(ledger.meters.isEmpty)
        #expect(ledger.clearAll(id: "33B1225950028", program: program, origin: Self.origin) == [])

        let wanted = program.homeAssistantConfigs(for: Self.meter, origin: Self.origin)
        #expect(wanted.count == 5)
        let plan = ledger.plan(id: Self.meter, discovery: nil, homeAssistant: wanted, forced: false, program: program, origin: Self.origin)
        #expect(plan == wanted, "the five entities, no clears")
        // Excluded later: exactly those five go, and the discovery message the broker holds.
        let discovery = Outgoing(topic: "kpm33b/discovery/\(Self.meter)", payload: Array(#"{"id":"33B1225950027","pack":"kpm33b"}"#.utf8),
                                 retain: true, kind: .discovery, device: Self.meter)
        ledger.observe(topic: discovery.topic, payload: discovery.payload)
        let cleared = ledger.clearAll(id: Self.meter, program: program, origin: Self.origin)
        #expect(Set(cleared.map(\.topic)) == Set(wanted.map(\.topic) + [discovery.topic]))
        #expect(cleared.allSatisfy { $0.payload.isEmpty && $0.retain })
        #expect(ledger.meters.isEmpty)
    }

    /// From per-entity configs to one device config, the way Home Assistant
    /// documents it: migrate, announce, clear; an entity whose field is gone
    /// is only cleared.
    @Test func perEntityConfigsMigrateToTheDeviceForm() throws {
        let entity = try Self.program(groups: ["current"], discovery: "entity")
        let device = try Self.program(groups: ["current"])
        var ledger = Self.ledger()
        for config in entity.homeAssistantConfigs(for: Self.meter, origin: Self.origin) {
            ledger.observe(topic: config.topic, payload: config.payload)
        }
        let gone = "homeassistant/sensor/kpm33b_33B1225950027/old_field/config"
        var oldField = try #require(try JSONValue.parse(entity.homeAssistantConfigs(for: Self.meter, origin: Self.origin)[0].payload).objectValue)
        oldField["unique_id"] = "kpm33b_33B1225950027_old_field"
        ledger.observe(topic: gone, payload: JSONValue.object(oldField).serialized())
        #expect(ledger.meters[Self.meter]?.entities.count == 6)

        let wanted = device.homeAssistantConfigs(for: Self.meter, origin: Self.origin)
        let plan = ledger.plan(id: Self.meter, discovery: nil, homeAssistant: wanted, forced: false, program: device, origin: Self.origin)
        let migrate = plan.filter { Self.text($0) == #"{"migrate_discovery":true}"# }
        #expect(migrate.count == 5 && !migrate.contains { $0.topic == gone })
        #expect(plan.firstIndex(of: wanted[0]) == 5, "after the migrations")
        #expect(plan.suffix(6).allSatisfy { $0.payload.isEmpty } && plan.suffix(6).contains { $0.topic == gone })
        #expect(plan.count == 12)
        #expect(ledger.meters[Self.meter]?.entities.isEmpty == true)
        // And back, for an older Home Assistant.
        let back = ledger.plan(id: Self.meter, discovery: nil, homeAssistant: entity.homeAssistantConfigs(for: Self.meter, origin: Self.origin),
                               forced: false, program: entity, origin: Self.origin)
        #expect(back.first?.topic == Self.deviceTopic && Self.text(back[0]) == #"{"migrate_discovery":true}"#)
        #expect(back.last?.topic == Self.deviceTopic && back.last?.payload.isEmpty == true)
        #expect(back.count == 7)
    }

    /// The proxy core at start-up: the read-back finds an excluded meter's
    /// announcements and a renamed field; both converge before any reading.
    @Test func theCoreConvergesWhatItReadsBack() throws {
        let f = try CoreFixture(homeAssistant: true)
        let excluded = "33B1225950030"
        let full = try Self.program(groups: ["current", "power"])
        var retained: [(topic: String, payload: String)] = []
        for id in [Self.meter, excluded] {
            for config in full.homeAssistantConfigs(for: id, origin: f.core.origin) {
                retained.append((config.topic, Self.text(config)))
            }
            retained.append(("kpm33b/discovery/\(id)", #"{"id":"\#(id)","pack":"kpm33b"}"#))
        }
        // The fixture's site excludes nobody: exclude one meter now.
        let excluding = try loadProgram("""
            root_topic: kpm33b
            homeassistant: { enabled: true }
            exclude: ["\(excluded)"]

            """, in: f.directory)
        f.core.reload(ProgramSet(single: excluding), now: Instant(epochMillis: 1_768_235_940_000))
        f.connectCentral(retained: retained)
        f.endIteration()
        let sent = f.transport.published
        let excludedTopics = Set(retained.filter { $0.topic.contains(excluded) }.map(\.topic))
        #expect(Set(sent.filter { $0.payload.isEmpty }.map(\.topic)) == excludedTopics)
        #expect(f.transport.internalPublished.map(\.topic) == ["kpm33b/discovery/\(excluded)"])
        // The kept meter (no groups in this site) loses its three power and three current components.
        let kept = sent.filter { $0.topic == Self.deviceTopic }
        #expect(kept.count == 2)
        #expect(kept.first?.payload.contains(#""current_l1":{"p":"sensor"}"#) == true)
        #expect(kept.last?.payload.contains(#""active_power":{"p":"sensor","name""#) == true)
        #expect(!sent.contains { $0.topic == "kpm33b/discovery/\(Self.meter)" }, "its discovery is unchanged")
    }
}
