import Foundation
import Testing
import YAML
@testable import RuleEngine

/// `data/homeassistant.yaml` is the source of the tables compiled into the
/// engine. This test loads it, checks its shape, and renders the Swift file
/// from it: when the committed file differs, it fails (a baseline is never
/// accepted silently); `REGENERATE_HA_TABLES=1` rewrites the file.
@Suite struct HomeAssistantTablesTests {
    static let dataPath = "\(Fixtures.repository)/data/homeassistant.yaml"
    static let swiftPath = "\(Fixtures.repository)/Sources/Engine/RuleEngine/HomeAssistant/HomeAssistantTables.swift"

    struct Tables {
        var version = ""
        var stateClasses: [String] = []
        var sensor: [HomeAssistant.SensorClass] = []
        var binarySensor: [String] = []
    }

    static func load() throws -> Tables {
        let bytes = try #require(FileManager.default.contents(atPath: dataPath))
        let ctx = LoadContext(file: dataPath)
        let root = try #require(ctx.parse([UInt8](bytes)))
        let top = try #require(ctx.mapping(root, "the tables", known: ["home_assistant", "state_classes", "sensor", "binary_sensor"]))
        var t = Tables()
        t.version = try #require(top.string("home_assistant", required: true)).value
        t.stateClasses = try #require(top.stringList("state_classes")).map(\.value)
        t.binarySensor = try #require(top.stringList("binary_sensor")).map(\.value)
        let sensorNode = try #require(top.node("sensor"))
        let entries = try #require(ctx.namedEntries(sensorNode, "sensor"))
        for entry in entries {
            let m = try #require(ctx.mapping(entry.value, entry.key.value, known: ["units", "state_classes", "numeric"]))
            var units: [String]?
            if m.node("units") != nil { units = try #require(m.stringList("units")).map(\.value) }
            t.sensor.append(HomeAssistant.SensorClass(
                name: entry.key.value, units: units, stateClasses: m.stringList("state_classes")?.map(\.value) ?? [],
                numeric: m.bool("numeric")?.value ?? true))
        }
        #expect(ctx.diagnostics.isEmpty, "\(ctx.diagnostics.map(\.headline))")
        return t
    }

    static func swiftSource(_ t: Tables) -> String {
        func list(_ items: [String]) -> String { "[" + items.map { "\"\($0)\"" }.joined(separator: ", ") + "]" }
        var out = """
        // Generated from data/homeassistant.yaml by Tests/RuleEngineTests/HomeAssistantTablesTests.swift.
        // Do not edit: change the data, then run REGENERATE_HA_TABLES=1 swift test --filter HomeAssistantTables.

        extension HomeAssistant {
            /// The Home Assistant release the tables were taken from.
            public static let version = "\(t.version)"
            /// Every sensor state class.
            public static let stateClasses: [String] = \(list(t.stateClasses))
            /// The binary_sensor device classes.
            public static let binarySensorClasses: [String] = \(list(t.binarySensor))
            /// The sensor device classes, by name.
            public static let sensorClasses: [SensorClass] = [

        """
        for c in t.sensor {
            let units = c.units.map(list) ?? "nil"
            out += "        SensorClass(name: \"\(c.name)\", units: \(units), stateClasses: \(list(c.stateClasses))\(c.numeric ? "" : ", numeric: false")),\n"
        }
        out += "    ]\n}\n"
        return out
    }

    @Test func theDataLoadsAndMatchesTheCompiledTables() throws {
        let t = try Self.load()
        #expect(t.version.split(separator: ".").count == 3)
        #expect(t.stateClasses.contains("measurement") && t.stateClasses.contains("total_increasing"))
        #expect(t.sensor.count > 50)
        #expect(t.binarySensor.contains("door"))
        let energy = try #require(t.sensor.first { $0.name == "energy" })
        #expect(energy.units?.contains("kWh") == true && energy.stateClasses == ["total", "total_increasing"])
        #expect(t.sensor.first { $0.name == "power" }?.stateClasses == ["measurement"])
        let source = Self.swiftSource(t)
        if ProcessInfo.processInfo.environment["REGENERATE_HA_TABLES"] == "1" {
            try Data(source.utf8).write(to: URL(fileURLWithPath: Self.swiftPath))
        }
        let committed = FileManager.default.contents(atPath: Self.swiftPath).map { String(decoding: $0, as: UTF8.self) }
        #expect(committed == source, "HomeAssistantTables.swift is not generated from data/homeassistant.yaml; run REGENERATE_HA_TABLES=1 swift test --filter HomeAssistantTables")
        // And the engine's compiled tables are those of the data.
        #expect(HomeAssistant.version == t.version)
        #expect(HomeAssistant.sensorClasses == t.sensor)
        #expect(HomeAssistant.stateClasses == t.stateClasses)
        #expect(HomeAssistant.binarySensorClasses == t.binarySensor)
    }

    @Test func lookups() {
        #expect(HomeAssistant.sensorClass("power")?.allows(unit: "kW") == true)
        #expect(HomeAssistant.sensorClass("power")?.allows(unit: "kw") == false)
        #expect(HomeAssistant.sensorClass("power_factor")?.allows(unit: "") == true)
        #expect(HomeAssistant.sensorClass("monetary")?.allows(unit: "EUR") == true)
        #expect(HomeAssistant.sensorClass("timestamp")?.allows(unit: "s") == false)
        #expect(HomeAssistant.classes(allowing: "kWh").contains("energy"))
        #expect(HomeAssistant.knownUnits.contains("V") && !HomeAssistant.knownUnits.contains(""))
    }
}
