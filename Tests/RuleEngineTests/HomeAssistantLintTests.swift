import Foundation
import Testing
@testable import RuleEngine

/// Each common authoring mistake (class, unit, state class), made in the real KPM33B pack:
/// Home Assistant would reject the entity, so lint fails with the exact text
/// below (the caret under the wrong value, a did-you-mean where one fits).
@Suite struct HomeAssistantLintTests {
    func lint(_ edit: (String) -> String) throws -> String {
        let dir = Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let edited = edit(Fixtures.packText)
        #expect(edited != Fixtures.packText, "the edit changed nothing")
        Fixtures.write(edited, to: "\(dir)/pack.yaml")
        do {
            _ = try Compiler.build(rules: dir, config: nil)
            return "no errors"
        } catch {
            return error.description.replacingOccurrences(of: dir + "/", with: "")
        }
    }

    @Test func theShippedPackPasses() throws {
        #expect(try Compiler.build(rules: Fixtures.pack, config: nil).routeNames == ["seconds", "minutes"])
    }

    @Test func misspelledDeviceClass() throws {
        let text = try lint {
            $0.replacingOccurrences(of: "power_factor: { from: zglys, name: Power factor, device_class: power_factor,",
                                    with: "power_factor: { from: zglys, name: Power factor, device_class: power_factr,")
        }
        #expect(text == """
        pack.yaml:122:76: error[R015]: unknown device_class 'power_factr' for field 'power_factor'
         122 |           - power_factor: { from: zglys, name: Power factor, device_class: power_factr, state_class: measurement, precision: 3 }
             |                                                                            ^
        hint: did you mean 'power_factor'?
        1 error found
        """)
    }

    @Test func unitInTheWrongCase() throws {
        let text = try lint { $0.replacingOccurrences(of: "    zyggl: kW\n", with: "    zyggl: kw\n").replacingOccurrences(of: "    pa: kW\n", with: "    pa: Kw\n") }
        #expect(text == """
        pack.yaml:35:9: error[R015]: unit 'Kw' of tag 'pa' is not a unit of device_class 'power'
         35 |     pa: Kw
            |         ^
        hint: did you mean 'kW'?
        pack.yaml:38:12: error[R015]: unit 'kw' of tag 'zyggl' is not a unit of device_class 'power'
         38 |     zyggl: kw
            |            ^
        hint: did you mean 'kW'?
        2 errors found
        """)
    }

    @Test func energyOnAPowerTag() throws {
        let text = try lint {
            $0.replacingOccurrences(of: "from: zyggl, name: Active power, device_class: power, state_class: measurement",
                                    with: "from: zyggl, name: Active power, device_class: energy, state_class: measurement")
        }
        // One mistake, one error: the state class is not also judged against the wrong class.
        #expect(text == """
        pack.yaml:104:74: error[R015]: device_class 'energy' does not take unit 'kW' (tag 'zyggl')
         104 |         - active_power: { from: zyggl, name: Active power, device_class: energy, state_class: measurement, precision: 3 }
             |                                                                          ^
        hint: 'kW' is a unit of 'power'; 'energy' takes GJ, GWh, Gcal, J, MJ, MWh, Mcal, TWh, Wh, cal, kJ, kWh, kcal, mWh
        1 error found
        """)
    }

    @Test func totalIncreasingPower() throws {
        let text = try lint {
            $0.replacingOccurrences(of: "from: zyggl, name: Active power, device_class: power, state_class: measurement",
                                    with: "from: zyggl, name: Active power, device_class: power, state_class: total_increasing")
        }
        #expect(text == """
        pack.yaml:104:94: error[R015]: state_class 'total_increasing' is not allowed with device_class 'power'
         104 |         - active_power: { from: zyggl, name: Active power, device_class: power, state_class: total_increasing, precision: 3 }
             |                                                                                              ^
        hint: 'power' allows 'measurement'
        1 error found
        """)
    }

    @Test func measuredEnergy() throws {
        let text = try lint {
            $0.replacingOccurrences(of: "            state_class: total_increasing", with: "            state_class: measurement")
        }
        #expect(text == """
        pack.yaml:149:26: error[R015]: state_class 'measurement' is not allowed with device_class 'energy'
         149 |             state_class: measurement
             |                          ^
        hint: 'energy' allows 'total', 'total_increasing'
        1 error found
        """)
    }

    @Test func voltageOnACurrentTag() throws {
        let text = try lint {
            $0.replacingOccurrences(of: "from: ia, name: Current L1, device_class: current", with: "from: ia, name: Current L1, device_class: voltage")
        }
        #expect(text == """
        pack.yaml:107:69: error[R015]: device_class 'voltage' does not take unit 'A' (tag 'ia')
         107 |           - current_l1: { from: ia, name: Current L1, device_class: voltage, state_class: measurement, precision: 2 }
             |                                                                     ^
        hint: 'A' is a unit of 'current'; 'voltage' takes MV, V, kV, mV, μV
        1 error found
        """)
    }

    @Test func textValuesAndBinarySensorClasses() throws {
        let text = try lint {
            $0.replacingOccurrences(of: "        - time: time\n        - active_power:", with: "        - time: { from: time, device_class: power, state_class: measurement }\n        - id2: { from: id, state_class: total }\n        - active_power:")
                .replacingOccurrences(of: "from: pfa, name: Power factor L1, device_class: power_factor,", with: "from: pfa, name: Power factor L1, device_class: door,")
                .replacingOccurrences(of: "from: ua, name: Voltage L1, device_class: voltage,", with: "from: ua, name: Voltage L1, device_class: power_factor,")
        }
        #expect(text == """
        pack.yaml:103:45: error[R015]: device_class 'power' needs a number, but tag 'time' is text
         103 |         - time: { from: time, device_class: power, state_class: measurement }
             |                                             ^
        hint: remove device_class or map a number tag
        pack.yaml:104:41: error[R015]: state_class 'total' needs a number, but tag 'id' is text
         104 |         - id2: { from: id, state_class: total }
             |                                         ^
        hint: remove state_class
        pack.yaml:116:69: error[R015]: device_class 'power_factor' does not take unit 'V' (tag 'ua')
         116 |           - voltage_l1: { from: ua, name: Voltage L1, device_class: power_factor, state_class: measurement, precision: 1 }
             |                                                                     ^
        hint: 'V' is a unit of 'voltage'; 'power_factor' takes no unit, %
        pack.yaml:120:80: error[R015]: unknown device_class 'door' for field 'power_factor_l1'
         120 |           - power_factor_l1: { from: pfa, name: Power factor L1, device_class: door, state_class: measurement, precision: 3 }
             |                                                                                ^
        hint: 'door' is a binary_sensor device class; a field becomes a sensor
        4 errors found
        """)
    }
}
