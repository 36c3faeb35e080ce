import Testing
import MQTT
import Topics

@Suite struct MQTTTopicTests {
    @Test(arguments: [
        ("a/b", "a/b", true),
        ("a/+", "a/b", true),
        ("a/+", "a/b/c", false),
        ("a/#", "a", true),          // '#' also matches the parent level
        ("a/#", "a/b/c", true),
        ("#", "a/b", true),
        ("+/+", "a/b", true),
        ("+", "/a", false),
        ("+/a", "/a", true),         // empty first level
        ("MQTT_COMMOD_SET_+", "MQTT_COMMOD_SET_25950027", false),  // '+' is a whole level
        ("MQTT_RT_DATA", "MQTT_RT_DATA", true),
        ("#", "$SYS/broker/uptime", false),  // '$' topics are not matched by leading wildcards
        ("$SYS/#", "$SYS/broker/uptime", true),
        ("a/b", "a/B", false),
        ("a/#/b", "a/x/b", false),   // invalid filter matches nothing
        ("a/+", "a/+", false),       // invalid topic matches nothing
    ])
    func matches(filter: String, topic: String, expected: Bool) {
        #expect(MQTTTopic.matches(filter: filter, topic: topic) == expected)
    }

    @Test func validity() {
        #expect(Topic.isValidFilter("kpm33b/+/seconds"))
        #expect(Topic.isValidFilter("#"))
        #expect(!Topic.isValidFilter(""))
        #expect(!Topic.isValidFilter("a/#/b"))
        #expect(!Topic.isValidFilter("a+/b"))
        #expect(!Topic.isValidFilter("a/b#"))
        #expect(Topic.isValidTopic("kpm33b/33B1225950027/seconds"))
        #expect(!Topic.isValidTopic(""))
        #expect(!Topic.isValidTopic("a/+"))
        #expect(!Topic.isValidTopic("a/#"))
        #expect(!Topic.isValidTopic("a\u{0}b"))
    }
}
