/// MQTT topic filters (`+`, `#`) compiled into a flat trie.
///
/// Built once by the compiler, then immutable and `Sendable`: lookups walk an
/// array of nodes with no allocation. Semantics follow MQTT 3.1.1 §4.7 (and
/// `mosquitto_topic_matches_sub`, the test oracle): `+` matches exactly one
/// level, `#` the parent level and everything below it, and topics starting
/// with `$` are not matched by a filter starting with a wildcard.
public struct TopicMatcher: Sendable {
    struct Node: Sendable {
        var literal: [String: Int32] = [:]
        var plus: Int32 = -1
        /// Value of a `#` child: matches this level's parent and below.
        var hashValue: Int32 = -1
        /// Value of a filter ending exactly here.
        var value: Int32 = -1
    }
    private var nodes: [Node] = [Node()]

    public init() {}

    /// Adds `filter` with `value`; returns the value already stored for the same filter, if any.
    @discardableResult
    public mutating func insert(_ filter: String, value: Int) -> Int? {
        var node = 0
        for level in filter.split(separator: "/", omittingEmptySubsequences: false) {
            if level == "#" {
                let old = nodes[node].hashValue
                if old < 0 { nodes[node].hashValue = Int32(value) }
                return old < 0 ? nil : Int(old)
            }
            let next: Int32
            if level == "+" {
                if nodes[node].plus < 0 { nodes.append(Node()); nodes[node].plus = Int32(nodes.count - 1) }
                next = nodes[node].plus
            } else if let child = nodes[node].literal[String(level)] {
                next = child
            } else {
                nodes.append(Node())
                next = Int32(nodes.count - 1)
                nodes[node].literal[String(level)] = next
            }
            node = Int(next)
        }
        let old = nodes[node].value
        if old < 0 { nodes[node].value = Int32(value) }
        return old < 0 ? nil : Int(old)
    }

    /// The value of the first filter that matches `topic` (literal levels first,
    /// then `+`, then `#`), or nil.
    public func match(_ topic: String) -> Int? {
        var topic = topic
        return topic.withUTF8 { bytes -> Int? in
            if bytes.isEmpty { return nil }
            let dollar = bytes[0] == UInt8(ascii: "$")
            return match(node: 0, bytes, from: 0, first: true, dollar: dollar)
        }
    }

    private func match(node: Int, _ bytes: UnsafeBufferPointer<UInt8>, from: Int, first: Bool, dollar: Bool) -> Int? {
        let n = nodes[node]
        // `#` matches the parent level too ("a/#" matches "a"), so check it before descending.
        let wildcardAllowed = !(first && dollar)
        if from > bytes.count {
            if n.value >= 0 { return Int(n.value) }
            if n.hashValue >= 0 { return Int(n.hashValue) }
            return nil
        }
        var end = from
        while end < bytes.count && bytes[end] != UInt8(ascii: "/") { end += 1 }
        if !n.literal.isEmpty {
            let level = String(decoding: UnsafeBufferPointer(rebasing: bytes[from..<end]), as: UTF8.self)
            if let child = n.literal[level], let v = match(node: Int(child), bytes, from: end + 1, first: false, dollar: dollar) {
                return v
            }
        }
        if wildcardAllowed {
            if n.plus >= 0, let v = match(node: Int(n.plus), bytes, from: end + 1, first: false, dollar: dollar) {
                return v
            }
            if n.hashValue >= 0 { return Int(n.hashValue) }
        }
        return nil
    }

    /// Whether some topic matches both filters. Used to reject overlapping routes.
    public static func overlap(_ a: String, _ b: String) -> Bool {
        let la = a.split(separator: "/", omittingEmptySubsequences: false)
        let lb = b.split(separator: "/", omittingEmptySubsequences: false)
        var i = 0
        while true {
            let ea = i >= la.count, eb = i >= lb.count
            if ea && eb { return true }
            // "x/#" also matches "x": a `#` meets the other filter's end.
            if ea { return lb[i] == "#" }
            if eb { return la[i] == "#" }
            if la[i] == "#" || lb[i] == "#" { return true }
            if la[i] != "+" && lb[i] != "+" && la[i] != lb[i] { return false }
            i += 1
        }
    }
}
