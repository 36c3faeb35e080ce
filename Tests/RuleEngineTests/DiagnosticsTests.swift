import Foundation
import Testing
@testable import RuleEngine

/// Broken packs and configs: the exact rendered text a rule author sees.
@Suite struct DiagnosticsTests {
    /// A small, complete pack; each test breaks it in one or two places.
    static let minimal = """
    pack: mini
    device:
      id: { field: id, pattern: "^[0-9A-Z]{13}$" }
      forms: { short_id: { last: 8 } }
    tags:
      MQTT_RT_DATA: { id: text, time: text, isend: text, zyggl: kW, ia: A }
      MQTT_ENY_NOW: { id: text, time: text, zygsz: kWh }
    routes:
      seconds:
        match: MQTT_RT_DATA
        reassemble:
          key: [id, time]
          complete_when: { isend: "1" }
          max_parts: 16
        drop:
          all_zero: { ignore: [id, time, isend] }
        publish:
          topic: "{root}/{id}/seconds"
          fields:
            - id: id
            - active_power: { from: zyggl, device_class: power }
          groups:
            current:
              - current_l1: { from: ia }
      minutes:
        match: MQTT_ENY_NOW
        publish:
          topic: "{root}/{id}/minutes"
          fields:
            - active_energy: { from: zygsz }
    discovery:
      topic: "{root}/discovery/{id}"
    settings:
      upload_interval_seconds: { allowed: [30, 60], default: 60 }
    commands:
      operation_id: { field: oprid, length: 32 }
      set_interval:
        topic: "MQTT_COMMOD_SET_{short_id}"
        payload: { oprid: "{oprid}", value: "{value}" }
        value: { setting: upload_interval_seconds }
        reply: { topic: MQTT_COMMOD_SET_REP, success: { code: "01" } }

    """

    /// Writes the minimal pack with `edit` applied and returns the rendered report.
    func lint(pack edit: (String) -> String, config: String? = nil) throws -> String {
        let dir = Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let edited = edit(Self.minimal)
        Fixtures.write(edited, to: "\(dir)/pack.yaml")
        var configPath: String?
        if let config {
            configPath = "\(dir)/site.yaml"
            Fixtures.write(config, to: configPath!)
        }
        do {
            _ = try Compiler.build(rules: dir, config: configPath)
            return "no errors"
        } catch {
            return error.description.replacingOccurrences(of: dir + "/", with: "")
        }
    }

    @Test func theMinimalPackIsClean() throws {
        #expect(try lint { $0 } == "no errors")
    }

    @Test func misspelledKey() throws {
        let text = try lint { $0.replacingOccurrences(of: "max_parts: 16", with: "max_prats: 16") }
        #expect(text == """
        pack.yaml:14:7: error[R001]: unknown key 'max_prats' in 'reassemble' of route 'seconds'
         14 |       max_prats: 16
            |       ^
        hint: did you mean 'max_parts'?
        1 error found
        """)
    }

    @Test func unknownTagAndVariableAndSetting() throws {
        let text = try lint {
            $0.replacingOccurrences(of: "from: zygsz", with: "from: zygzs")
                .replacingOccurrences(of: "\"{root}/discovery/{id}\"", with: "\"{rot}/discovery/{id}\"")
                .replacingOccurrences(of: "value: { setting: upload_interval_seconds }", with: "value: { setting: upload_interval_second }")
        }
        #expect(text == """
        pack.yaml:30:34: error[R004]: unknown tag 'zygzs' for MQTT_ENY_NOW in route 'minutes'
         30 |         - active_energy: { from: zygzs }
            |                                  ^
        hint: did you mean 'zygsz'?
        pack.yaml:32:10: error[R005]: unknown variable '{rot}' in the discovery topic
         32 |   topic: "{rot}/discovery/{id}"
            |          ^
        hint: did you mean 'root'?
        pack.yaml:40:23: error[R010]: unknown setting 'upload_interval_second' in command 'set_interval'
         40 |     value: { setting: upload_interval_second }
            |                       ^
        hint: did you mean 'upload_interval_seconds'?
        3 errors found
        """)
    }

    @Test func unsafeIDPatternAndOverlappingRoute() throws {
        let text = try lint {
            $0.replacingOccurrences(of: "pattern: \"^[0-9A-Z]{13}$\"", with: "pattern: \".+\"")
                .replacingOccurrences(of: "match: MQTT_ENY_NOW", with: "match: \"+\"")
        }
        #expect(text == """
        pack.yaml:3:29: error[R007]: the id pattern lets '/', '+', '#' into topics
         3 |   id: { field: id, pattern: ".+" }
           |                             ^
        hint: ids become topic levels; use a class such as [0-9A-Z] instead of '.' or a negated class
        pack.yaml:26:12: error[R006]: route 'minutes' (+) overlaps route 'seconds' (MQTT_RT_DATA)
         26 |     match: "+"
            |            ^
        hint: a message goes to exactly one route; make the filters disjoint
        pack.yaml:30:34: error[R004]: unknown tag 'zygsz' for + in route 'minutes'
         30 |         - active_energy: { from: zygsz }
            |                                  ^
        hint: a route with wildcards may use only tags that every topic it matches declares
        3 errors found
        """)
    }

    @Test func idWithoutPattern() throws {
        let text = try lint { $0.replacingOccurrences(of: ", pattern: \"^[0-9A-Z]{13}$\"", with: "") }
        #expect(text == """
        pack.yaml:3:16: error[R007]: the device id reaches topics but has no pattern
         3 |   id: { field: id }
           |                ^
        hint: add 'pattern:' under device.id, e.g. "^[0-9A-Z]{13}$"
        1 error found
        """)
    }

    @Test func duplicateKeyAndWrongType() throws {
        let text = try lint {
            $0.replacingOccurrences(of: "max_parts: 16", with: "max_parts: many")
                .replacingOccurrences(of: "topic: \"{root}/{id}/minutes\"", with: "topic: \"{root}/{id}/minutes\"\n      topic: x")
        }
        #expect(text == """
        pack.yaml:14:18: error[R003]: 'max_parts' must be an integer
         14 |       max_parts: many
            |                  ^
        hint: found 'many'
        pack.yaml:29:7: error[Y002]: duplicate key 'topic'
         29 |       topic: x
            |       ^
        hint: first written at line 28; remove one of them
        2 errors found
        """)
    }

    /// The rules' keys only; the services' keys are checked by the SiteSettings target.
    @Test func siteConfigAgainstThePack() throws {
        let text = try lint(pack: { $0 }, config: """
        meters:
          defaults:
            groups: [curent]
            settings: { upload_interval_seconds: 45 }
          "33B1225950027":
            context: my garage
        homeassistant: { expire_after_factor: 0.5 }
        """)
        #expect(text == """
        site.yaml:3:14: error[C008]: unknown group 'curent'
         3 |     groups: [curent]
           |              ^
        hint: did you mean 'current'?
        site.yaml:4:42: error[C003]: upload_interval_seconds 45 is not allowed
         4 |     settings: { upload_interval_seconds: 45 }
           |                                          ^
        hint: allowed: 30, 60
        site.yaml:6:14: error[C002]: context 'my garage' cannot be a topic level
         6 |     context: my garage
           |              ^
        hint: use letters, digits, '_' and '-' only
        site.yaml:7:39: error[C009]: 'expire_after_factor' must be greater than 1
         7 | homeassistant: { expire_after_factor: 0.5 }
           |                                       ^
        hint: an entity would expire before the next reading arrives; 3 is a good choice
        4 errors found
        """)
    }

    /// The engine alone knows no service keys: only a reader that owns them
    /// (`Site.load`) makes them acceptable.
    @Test func theEngineAloneKnowsNoBrokers() throws {
        let text = try lint(pack: { $0 }, config: """
        brokers: {}
        proxy: { clock_skew_threshold_s: 60, status_interval_s: 5 }
        """)
        #expect(text == """
        site.yaml:1:1: error[C005]: unknown key 'brokers' in the site config
         1 | brokers: {}
           | ^
        hint: known keys: root_topic, instance, meters, exclude, homeassistant, proxy, config_sender, default_pack
        site.yaml:2:38: error[C005]: unknown key 'status_interval_s' in 'proxy'
         2 | proxy: { clock_skew_threshold_s: 60, status_interval_s: 5 }
           |                                      ^
        hint: known keys: status_topic, clock_skew_threshold_s
        2 errors found
        """)
    }

    @Test func yamlSyntaxError() throws {
        let text = try lint { $0.replacingOccurrences(of: "pack: mini", with: "pack: [mini") }
        #expect(text == """
        pack.yaml:2:7: error[Y001]: did not find expected ',' or ']' (while parsing a flow sequence at 1:7)
         2 | device:
           |       ^
        hint: check indentation and quoting near this point
        1 error found
        """)
    }

    /// One mistake, one error: a route that fails to compile must not make
    /// every group a site enables an `unknown group` too.
    @Test func aRouteErrorDoesNotCascadeIntoTheSiteConfig() throws {
        let text = try lint(pack: {
            $0.replacingOccurrences(of: "- active_power: { from: zyggl, device_class: power }",
                                    with: "- active_power: { from: zyggl, device_class: power }\n        - active_power: { from: zyggl }")
        }, config: """
        meters:
          defaults:
            groups: [current]
        """)
        #expect(text == """
        pack.yaml:22:11: error[R011]: output field 'active_power' declared twice in route 'seconds'
         22 |         - active_power: { from: zyggl }
            |           ^
        hint: first declared at line 21
        1 error found
        """)
    }

    /// A bad value gets the caret under the value, not under the field's name.
    @Test func theCaretPointsAtTheBadValue() throws {
        let text = try lint {
            $0.replacingOccurrences(of: "- active_energy: { from: zygsz }", with: "- active_energy: { from: zygsz, state_class: totl_increasing, precision: 12 }")
        }
        #expect(text == """
        pack.yaml:30:54: error[R015]: unknown state_class 'totl_increasing' for field 'active_energy'
         30 |         - active_energy: { from: zygsz, state_class: totl_increasing, precision: 12 }
            |                                                      ^
        hint: did you mean 'total_increasing'?
        pack.yaml:30:82: error[R012]: precision 12 of field 'active_energy' is out of range
         30 |         - active_energy: { from: zygsz, state_class: totl_increasing, precision: 12 }
            |                                                                                  ^
        hint: use 0 to 10 decimals
        2 errors found
        """)
    }
}
