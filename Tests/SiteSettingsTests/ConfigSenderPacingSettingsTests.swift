import Foundation
import RuleEngine
import SiteSettings
import Testing

/// `config_sender.max_in_flight` and `min_spacing_ms`: defaults,
/// values, and the exact text of a bad one.
@Suite struct ConfigSenderPacingSettingsTests {
    @Test func defaultsAndValues() throws {
        let (_, defaults) = Fixtures.load("config_sender: { retries: 2 }\n")
        #expect(defaults?.configSender.maxInFlight == 100)
        #expect(defaults?.configSender.minSpacingMilliseconds == 200)
        let (text, settings) = Fixtures.load("""
        config_sender:
          max_in_flight: 0
          min_spacing_ms: 1500
        """)
        #expect(text == "no errors")
        #expect(settings?.configSender.maxInFlight == 0)
        #expect(settings?.configSender.minSpacingMilliseconds == 1500)
    }

    @Test func badValuesAreErrorsWithAHint() {
        let (text, _) = Fixtures.load("""
        config_sender:
          max_in_flight: -1
          min_spacing_ms: 90000
          max_in_fligth: 5
        """)
        #expect(text == """
        site.yaml:2:18: error[C009]: 'max_in_flight' must not be negative
         2 |   max_in_flight: -1
           |                  ^
        hint: commands awaiting a reply at once; 0 means no limit, the default is 100
        site.yaml:3:19: error[C009]: 'min_spacing_ms' must be between 0 and 60000
         3 |   min_spacing_ms: 90000
           |                   ^
        hint: milliseconds between two commands to one meter; the default is 200
        site.yaml:4:3: error[C005]: unknown key 'max_in_fligth' in 'config_sender'
         4 |   max_in_fligth: 5
           |   ^
        hint: did you mean 'max_in_flight'?
        3 errors found
        """)
    }
}
