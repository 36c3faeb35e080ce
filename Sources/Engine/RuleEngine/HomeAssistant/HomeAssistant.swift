/// What Home Assistant accepts in a sensor's discovery config: its device
/// classes, the units and state classes each allows, and the binary_sensor
/// device classes.
///
/// The tables are data (`data/homeassistant.yaml`, with the Home Assistant
/// version they were taken from) compiled into the engine as
/// `HomeAssistantTables.swift`, so `rulecheck` and the services need no file
/// at run time. Lint checks every output field against them; the discovery
/// configs the engine publishes carry only what passed.
public enum HomeAssistant {
    /// One sensor device class.
    public struct SensorClass: Sendable, Equatable {
        public let name: String
        /// The units it allows; `""` stands for no unit. nil: any unit (monetary: a currency code).
        public let units: [String]?
        /// The state classes it allows; empty: none may be set.
        public let stateClasses: [String]
        /// False for classes whose state is not a number (date, enum, timestamp).
        public let numeric: Bool

        public init(name: String, units: [String]?, stateClasses: [String], numeric: Bool = true) {
            self.name = name
            self.units = units
            self.stateClasses = stateClasses
            self.numeric = numeric
        }

        /// Whether `unit` (`""`: none) may go with this class.
        public func allows(unit: String) -> Bool {
            guard numeric else { return unit.isEmpty }
            return units?.contains(unit) ?? true
        }
    }

    private static let byName: [String: SensorClass] = Dictionary(uniqueKeysWithValues: sensorClasses.map { ($0.name, $0) })

    /// The sensor device class called `name`, if Home Assistant has one.
    public static func sensorClass(_ name: String) -> SensorClass? { byName[name] }

    /// Every unit some sensor device class allows (no `""`).
    public static let knownUnits: Set<String> = Set(sensorClasses.flatMap { $0.units ?? [] }.filter { !$0.isEmpty })

    /// The device classes that allow `unit`, in name order.
    public static func classes(allowing unit: String) -> [String] {
        sensorClasses.filter { $0.units?.contains(unit) ?? false }.map(\.name)
    }
}
