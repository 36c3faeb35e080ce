/// The topics of the retained messages the ledger records, kept as the
/// meter's id between a prefix and a suffix that the meters share
/// (`kpm33b/discovery/` + id; `homeassistant/device/kpm33b_` + id +
/// `/config`): a few forms for a whole site instead of two strings per meter
/// (about 160 bytes a meter with malloc's rounding, 1.6 MB at 10,000). A
/// topic without the id in it, or past `maxForms` distinct forms, keeps its
/// own string.
struct LedgerTopics {
    /// A topic as recorded for one meter (its id is the ledger's key).
    enum Kept: Equatable {
        case form(Int)
        case own(String)
    }

    static let maxForms = 64
    private var forms: [(prefix: String, suffix: String)] = []
    /// How many forms the meters share (tests).
    var formCount: Int { forms.count }

    /// `topic` of meter `id`, as it is to be kept.
    mutating func keep(_ topic: String, id: String) -> Kept {
        guard let range = Self.lastRange(of: id, in: topic) else { return .own(topic) }
        let prefix = String(topic.utf8[..<range.lowerBound])!, suffix = String(topic.utf8[range.upperBound...])!
        if let i = forms.firstIndex(where: { $0.prefix == prefix && $0.suffix == suffix }) { return .form(i) }
        guard forms.count < Self.maxForms else { return .own(topic) }
        forms.append((prefix, suffix))
        return .form(forms.count - 1)
    }

    /// The topic `kept` stands for, of meter `id`.
    func topic(_ kept: Kept, id: String) -> String {
        switch kept {
        case .form(let i): forms[i].prefix + id + forms[i].suffix
        case .own(let topic): topic
        }
    }

    /// Whether `kept` (of meter `id`) is `topic`; false when nothing is kept.
    func matches(_ kept: Kept?, _ topic: String, id: String) -> Bool {
        switch kept {
        case nil: false
        case .own(let own): own == topic
        case .form(let f): Self.isJoined(topic.utf8, forms[f].prefix.utf8, id.utf8, forms[f].suffix.utf8)
        }
    }

    /// Whether `t` is `p`, `i` and `s` back to back, by bytes (as the broker compares topics).
    private static func isJoined(_ t: String.UTF8View, _ p: String.UTF8View, _ i: String.UTF8View, _ s: String.UTF8View) -> Bool {
        t.count == p.count + i.count + s.count && t.starts(with: p)
            && t.dropFirst(p.count).starts(with: i) && t.dropFirst(p.count + i.count).elementsEqual(s)
    }

    /// Where `id` last stands in `topic`, by bytes.
    private static func lastRange(of id: String, in topic: String) -> Range<String.UTF8View.Index>? {
        let t = topic.utf8, n = id.utf8.count
        guard n > 0, t.count >= n else { return nil }
        var start = t.index(t.endIndex, offsetBy: -n)
        while true {
            let end = t.index(start, offsetBy: n)
            if t[start..<end].elementsEqual(id.utf8) { return start..<end }
            guard start > t.startIndex else { return nil }
            start = t.index(before: start)
        }
    }
}
