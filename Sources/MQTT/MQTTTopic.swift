internal import CMosquitto

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
        return result && isValidFilter(filter) && isValidTopic(topic)
    }

    /// A subscription filter: non-empty, valid UTF-8 without NUL, at most
    /// 65535 bytes, `+` alone in its level, `#` alone and last.
    public static func isValidFilter(_ filter: String) -> Bool {
        guard !filter.isEmpty, filter.utf8.count <= 65535, !filter.utf8.contains(0) else { return false }
        return filter.withCString { mosquitto_sub_topic_check2($0, filter.utf8.count) } == Int32(MOSQ_ERR_SUCCESS.rawValue)
    }

    /// A topic name to publish to: non-empty, valid UTF-8 without NUL, at most
    /// 65535 bytes, no wildcards.
    public static func isValidTopic(_ topic: String) -> Bool {
        guard !topic.isEmpty, topic.utf8.count <= 65535, !topic.utf8.contains(0) else { return false }
        return topic.withCString { mosquitto_pub_topic_check2($0, topic.utf8.count) } == Int32(MOSQ_ERR_SUCCESS.rawValue)
    }
}
