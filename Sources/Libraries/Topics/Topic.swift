/// What may stand in an MQTT topic: the one copy of each rule.
///
/// Pure Swift with no dependencies, so that the engine (packs, site configs,
/// meter ids, Home Assistant ids) and the MQTT adapter (before a call into
/// libmosquitto) check topics the same way. Semantics follow MQTT 3.1.1 §4.7
/// and libmosquitto's `mosquitto_sub_topic_check2`/`mosquitto_pub_topic_check2`.
public enum Topic {
    /// The longest topic or filter MQTT can carry, in bytes.
    public static let maxLength = 65535

    /// A subscription filter: non-empty, at most 65535 bytes, no NUL, `+`
    /// alone in its level, `#` alone and last.
    public static func isValidFilter(_ filter: String) -> Bool {
        guard isCarried(filter) else { return false }
        let levels = filter.split(separator: "/", omittingEmptySubsequences: false)
        for (i, level) in levels.enumerated() {
            if level == "#" { if i != levels.count - 1 { return false } ; continue }
            if level == "+" { continue }
            if level.contains("#") || level.contains("+") { return false }
        }
        return true
    }

    /// A topic name to publish to: non-empty, at most 65535 bytes, no NUL,
    /// no wildcards.
    public static func isValidTopic(_ topic: String) -> Bool {
        isCarried(topic) && !topic.utf8.contains(where: { $0 == UInt8(ascii: "+") || $0 == UInt8(ascii: "#") })
    }

    private static func isCarried(_ s: String) -> Bool {
        !s.isEmpty && s.utf8.count <= maxLength && !s.utf8.contains(0)
    }

    /// Whether `bytes` may become one topic level: non-empty, and no level
    /// separator, wildcard or NUL (a meter id, checked on every message).
    @inlinable
    public static func isSafeLevel(_ bytes: UnsafeRawBufferPointer) -> Bool {
        if bytes.isEmpty { return false }
        for b in bytes where b == UInt8(ascii: "/") || b == UInt8(ascii: "+") || b == UInt8(ascii: "#") || b == 0 { return false }
        return true
    }

    /// Whether `s` is a plain name: ASCII letters, digits, `_` and `-` (and,
    /// when `allowSlash`, `/` between levels) — what a site config may put in
    /// a topic (a root, a context).
    public static func isPlainName(_ s: String, allowSlash: Bool) -> Bool {
        guard !s.isEmpty else { return false }
        if allowSlash && (s.hasPrefix("/") || s.hasSuffix("/") || s.contains("//")) { return false }
        return s.unicodeScalars.allSatisfy { c in isPlain(c) || (allowSlash && c == "/") }
    }

    /// `s` with every character that is not plain (`[A-Za-z0-9_-]`) replaced
    /// by `_`: Home Assistant's node and object ids, which are topic levels.
    public static func plainName(_ s: String) -> String {
        String(s.unicodeScalars.map { c in isPlain(c) ? Character(c) : "_" })
    }

    private static func isPlain(_ c: Unicode.Scalar) -> Bool {
        (c.isASCII && (c.properties.isAlphabetic || ("0"..."9").contains(c))) || c == "_" || c == "-"
    }
}
