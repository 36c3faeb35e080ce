import MQTT
import Topics
import Testing
import TestSupport
@testable import RuleEngine

/// The compiled topic matcher against `mosquitto_topic_matches_sub` as the oracle.
@Suite struct TopicMatcherTests {
    static let levels = ["MQTT_RT_DATA", "MQTT_ENY_NOW", "a", "b", "", "$SYS", "kpm33b", "x y"]

    static func randomFilter(_ rng: inout SplitMix) -> String {
        let count = 1 + Int(rng.next() % 4)
        var parts: [String] = []
        for i in 0..<count {
            switch rng.next() % 6 {
            case 0: parts.append("+")
            case 1 where i == count - 1: parts.append("#")
            default: parts.append(levels[Int(rng.next() % UInt64(levels.count))])
            }
        }
        return parts.joined(separator: "/")
    }

    static func randomTopic(_ rng: inout SplitMix) -> String {
        let count = 1 + Int(rng.next() % 4)
        return (0..<count).map { _ in levels[Int(rng.next() % UInt64(levels.count))] }.joined(separator: "/")
    }

    /// One filter at a time: matches iff mosquitto says so.
    @Test func singleFiltersAgreeWithMosquitto() {
        var rng = SplitMix(seed: 7)
        var checked = 0, matched = 0
        for _ in 0..<400 {
            let filter = Self.randomFilter(&rng)
            guard Topic.isValidFilter(filter) else { continue }
            var m = TopicMatcher()
            m.insert(filter, value: 1)
            for _ in 0..<60 {
                let topic = Self.randomTopic(&rng)
                let expected = MQTTTopic.matches(filter: filter, topic: topic)
                #expect((m.match(topic) != nil) == expected, "filter \(filter) topic \(topic)")
                checked += 1
                if expected { matched += 1 }
            }
        }
        #expect(checked > 10_000)
        #expect(matched > 500, "the generator must produce matches too")
    }

    /// Several filters in one trie: a topic finds a route iff some filter matches it,
    /// and the route it finds is one that matches.
    @Test func sharedTrieAgreesWithMosquitto() {
        var rng = SplitMix(seed: 11)
        for _ in 0..<100 {
            var m = TopicMatcher()
            var filters: [String] = []
            while filters.count < 5 {
                let f = Self.randomFilter(&rng)
                if Topic.isValidFilter(f) && !filters.contains(f) { m.insert(f, value: filters.count); filters.append(f) }
            }
            for _ in 0..<100 {
                let topic = Self.randomTopic(&rng)
                let any = filters.contains { MQTTTopic.matches(filter: $0, topic: topic) }
                let found = m.match(topic)
                #expect((found != nil) == any, "filters \(filters) topic \(topic)")
                if let found { #expect(MQTTTopic.matches(filter: filters[found], topic: topic)) }
            }
        }
    }

    /// Overlap (used to reject overlapping routes) agrees with brute force over the topic space.
    @Test func overlapAgreesWithBruteForce() {
        var rng = SplitMix(seed: 3)
        var topics: [String] = []
        for _ in 0..<3000 { topics.append(Self.randomTopic(&rng)) }
        for _ in 0..<300 {
            let a = Self.randomFilter(&rng), b = Self.randomFilter(&rng)
            guard Topic.isValidFilter(a), Topic.isValidFilter(b) else { continue }
            let witnessed = topics.contains { MQTTTopic.matches(filter: a, topic: $0) && MQTTTopic.matches(filter: b, topic: $0) }
            // A witness proves overlap; without one, overlap must come from a level the sample lacks.
            if witnessed { #expect(TopicMatcher.overlap(a, b), "\(a) vs \(b)") }
        }
        #expect(TopicMatcher.overlap("MQTT_RT_DATA", "+"))
        #expect(TopicMatcher.overlap("a/#", "a"))
        #expect(!TopicMatcher.overlap("MQTT_RT_DATA", "MQTT_ENY_NOW"))
        #expect(!TopicMatcher.overlap("a/+", "a"))
    }

    @Test func validity() {
        #expect(Topic.isValidFilter("a/+/#"))
        #expect(!Topic.isValidFilter("a/#/b"))
        #expect(!Topic.isValidFilter("a+"))
        #expect(!Topic.isValidFilter(""))
        #expect(Topic.isValidTopic("kpm33b/x/seconds"))
        #expect(!Topic.isValidTopic("kpm33b/+/seconds"))
    }
}
