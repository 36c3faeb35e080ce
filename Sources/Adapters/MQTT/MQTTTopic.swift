internal import CMosquitto
import Topics

/// Topic names and filters, checked by libmosquitto's own functions — the
/// reference for `+`/`#` semantics and an oracle for other matchers' tests.
public enum MQTTTopic {
    /// Whether `topic` matches subscription `filter` (`+` one level, `#` the
    /// rest; a topic starting with `$` is not matched by a leading wildcard).
    /// An invalid filter or topic matches nothing.
    public static func matches(filter: String, topic: String) -> Bool {
        var result = false
        let rc = filter.withCString { f in
            topic.withCString { t in
                mosquitto_topic_matches_sub2(f, filter.utf8.count, t, topic.utf8.count, &result)
            }
        }
        guard rc == Int32(MOSQ_ERR_SUCCESS.rawValue) else { return false }
        // libmosquitto 2.0 does not reject every invalid pair here (e.g. a topic
        // containing '+'), so both sides are checked as well.
        return result && Topic.isValidFilter(filter) && Topic.isValidTopic(topic)
    }
}
