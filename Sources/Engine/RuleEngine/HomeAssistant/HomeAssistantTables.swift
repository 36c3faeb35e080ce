// Generated from data/homeassistant.yaml by Tests/RuleEngineTests/HomeAssistantTablesTests.swift.
// Do not edit: change the data, then run REGENERATE_HA_TABLES=1 swift test --filter HomeAssistantTables.

extension HomeAssistant {
    /// The Home Assistant release the tables were taken from.
    public static let version = "2026.2.3"
    /// Every sensor state class.
    public static let stateClasses: [String] = ["measurement", "measurement_angle", "total", "total_increasing"]
    /// The binary_sensor device classes.
    public static let binarySensorClasses: [String] = ["battery", "battery_charging", "carbon_monoxide", "cold", "connectivity", "door", "garage_door", "gas", "heat", "light", "lock", "moisture", "motion", "moving", "occupancy", "opening", "plug", "power", "presence", "problem", "running", "safety", "smoke", "sound", "tamper", "update", "vibration", "window"]
    /// The sensor device classes, by name.
    public static let sensorClasses: [SensorClass] = [
        SensorClass(name: "absolute_humidity", units: ["g/m³", "mg/m³"], stateClasses: ["measurement"]),
        SensorClass(name: "apparent_power", units: ["VA", "kVA", "mVA"], stateClasses: ["measurement"]),
        SensorClass(name: "aqi", units: [""], stateClasses: ["measurement"]),
        SensorClass(name: "area", units: ["ac", "cm²", "ft²", "ha", "in²", "km²", "mi²", "mm²", "m²", "yd²"], stateClasses: ["measurement", "measurement_angle", "total", "total_increasing"]),
        SensorClass(name: "atmospheric_pressure", units: ["Pa", "bar", "cbar", "hPa", "inHg", "inH₂O", "kPa", "mPa", "mbar", "mmHg", "psi"], stateClasses: ["measurement"]),
        SensorClass(name: "battery", units: ["%"], stateClasses: ["measurement"]),
        SensorClass(name: "blood_glucose_concentration", units: ["mg/dL", "mmol/L"], stateClasses: ["measurement"]),
        SensorClass(name: "carbon_dioxide", units: ["ppm"], stateClasses: ["measurement"]),
        SensorClass(name: "carbon_monoxide", units: ["mg/m³", "ppb", "ppm", "μg/m³"], stateClasses: ["measurement"]),
        SensorClass(name: "conductivity", units: ["S/cm", "mS/cm", "μS/cm"], stateClasses: ["measurement"]),
        SensorClass(name: "current", units: ["A", "mA"], stateClasses: ["measurement"]),
        SensorClass(name: "data_rate", units: ["B/s", "GB/s", "Gbit/s", "GiB/s", "KiB/s", "MB/s", "Mbit/s", "MiB/s", "bit/s", "kB/s", "kbit/s"], stateClasses: ["measurement"]),
        SensorClass(name: "data_size", units: ["B", "EB", "EiB", "GB", "Gbit", "GiB", "KiB", "MB", "Mbit", "MiB", "PB", "PiB", "TB", "TiB", "YB", "YiB", "ZB", "ZiB", "bit", "kB", "kbit"], stateClasses: ["measurement", "measurement_angle", "total", "total_increasing"]),
        SensorClass(name: "date", units: nil, stateClasses: [], numeric: false),
        SensorClass(name: "distance", units: ["cm", "ft", "in", "km", "m", "mi", "mm", "nmi", "yd"], stateClasses: ["measurement", "measurement_angle", "total", "total_increasing"]),
        SensorClass(name: "duration", units: ["d", "h", "min", "ms", "s", "μs"], stateClasses: ["measurement", "measurement_angle", "total", "total_increasing"]),
        SensorClass(name: "energy", units: ["GJ", "GWh", "Gcal", "J", "MJ", "MWh", "Mcal", "TWh", "Wh", "cal", "kJ", "kWh", "kcal", "mWh"], stateClasses: ["total", "total_increasing"]),
        SensorClass(name: "energy_distance", units: ["Wh/km", "kWh/100km", "km/kWh", "mi/kWh"], stateClasses: ["measurement"]),
        SensorClass(name: "energy_storage", units: ["GJ", "GWh", "Gcal", "J", "MJ", "MWh", "Mcal", "TWh", "Wh", "cal", "kJ", "kWh", "kcal", "mWh"], stateClasses: ["measurement"]),
        SensorClass(name: "enum", units: nil, stateClasses: [], numeric: false),
        SensorClass(name: "frequency", units: ["GHz", "Hz", "MHz", "kHz"], stateClasses: ["measurement"]),
        SensorClass(name: "gas", units: ["CCF", "L", "MCF", "ft³", "m³"], stateClasses: ["total", "total_increasing"]),
        SensorClass(name: "humidity", units: ["%"], stateClasses: ["measurement"]),
        SensorClass(name: "illuminance", units: ["lx"], stateClasses: ["measurement"]),
        SensorClass(name: "irradiance", units: ["BTU/(h⋅ft²)", "W/m²"], stateClasses: ["measurement"]),
        SensorClass(name: "moisture", units: ["%"], stateClasses: ["measurement"]),
        SensorClass(name: "monetary", units: nil, stateClasses: ["total"]),
        SensorClass(name: "nitrogen_dioxide", units: ["ppb", "μg/m³"], stateClasses: ["measurement"]),
        SensorClass(name: "nitrogen_monoxide", units: ["ppb", "μg/m³"], stateClasses: ["measurement"]),
        SensorClass(name: "nitrous_oxide", units: ["μg/m³"], stateClasses: ["measurement"]),
        SensorClass(name: "ozone", units: ["ppb", "μg/m³"], stateClasses: ["measurement"]),
        SensorClass(name: "ph", units: [""], stateClasses: ["measurement"]),
        SensorClass(name: "pm1", units: ["μg/m³"], stateClasses: ["measurement"]),
        SensorClass(name: "pm10", units: ["μg/m³"], stateClasses: ["measurement"]),
        SensorClass(name: "pm25", units: ["μg/m³"], stateClasses: ["measurement"]),
        SensorClass(name: "pm4", units: ["μg/m³"], stateClasses: ["measurement"]),
        SensorClass(name: "power", units: ["GW", "MW", "TW", "W", "kW", "mW"], stateClasses: ["measurement"]),
        SensorClass(name: "power_factor", units: ["", "%"], stateClasses: ["measurement"]),
        SensorClass(name: "precipitation", units: ["cm", "in", "mm"], stateClasses: ["measurement", "measurement_angle", "total", "total_increasing"]),
        SensorClass(name: "precipitation_intensity", units: ["in/d", "in/h", "mm/d", "mm/h"], stateClasses: ["measurement"]),
        SensorClass(name: "pressure", units: ["Pa", "bar", "cbar", "hPa", "inHg", "inH₂O", "kPa", "mPa", "mbar", "mmHg", "psi"], stateClasses: ["measurement"]),
        SensorClass(name: "reactive_energy", units: ["kvarh", "varh"], stateClasses: ["total", "total_increasing"]),
        SensorClass(name: "reactive_power", units: ["kvar", "mvar", "var"], stateClasses: ["measurement"]),
        SensorClass(name: "signal_strength", units: ["dB", "dBm"], stateClasses: ["measurement"]),
        SensorClass(name: "sound_pressure", units: ["dB", "dBA"], stateClasses: ["measurement"]),
        SensorClass(name: "speed", units: ["Beaufort", "ft/s", "in/d", "in/h", "in/s", "km/h", "kn", "m/min", "m/s", "mm/d", "mm/h", "mm/s", "mph"], stateClasses: ["measurement"]),
        SensorClass(name: "sulphur_dioxide", units: ["ppb", "μg/m³"], stateClasses: ["measurement"]),
        SensorClass(name: "temperature", units: ["K", "°C", "°F"], stateClasses: ["measurement"]),
        SensorClass(name: "temperature_delta", units: ["K", "°C", "°F"], stateClasses: ["measurement"]),
        SensorClass(name: "timestamp", units: nil, stateClasses: [], numeric: false),
        SensorClass(name: "volatile_organic_compounds", units: ["mg/m³", "μg/m³"], stateClasses: ["measurement"]),
        SensorClass(name: "volatile_organic_compounds_parts", units: ["ppb", "ppm"], stateClasses: ["measurement"]),
        SensorClass(name: "voltage", units: ["MV", "V", "kV", "mV", "μV"], stateClasses: ["measurement"]),
        SensorClass(name: "volume", units: ["CCF", "L", "MCF", "fl. oz.", "ft³", "gal", "mL", "m³"], stateClasses: ["total", "total_increasing"]),
        SensorClass(name: "volume_flow_rate", units: ["L/h", "L/min", "L/s", "ft³/min", "gal/d", "gal/h", "gal/min", "mL/s", "m³/h", "m³/min", "m³/s"], stateClasses: ["measurement"]),
        SensorClass(name: "volume_storage", units: ["CCF", "L", "MCF", "fl. oz.", "ft³", "gal", "mL", "m³"], stateClasses: ["measurement"]),
        SensorClass(name: "water", units: ["CCF", "L", "MCF", "ft³", "gal", "m³"], stateClasses: ["total", "total_increasing"]),
        SensorClass(name: "weight", units: ["g", "kg", "lb", "mg", "oz", "st", "μg"], stateClasses: ["measurement", "total", "total_increasing"]),
        SensorClass(name: "wind_direction", units: ["°"], stateClasses: ["measurement_angle"]),
        SensorClass(name: "wind_speed", units: ["Beaufort", "ft/s", "in/s", "km/h", "kn", "m/min", "m/s", "mm/s", "mph"], stateClasses: ["measurement"]),
    ]
}
