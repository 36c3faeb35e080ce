/// One meter's guarded counters by field name (`Engine.DeviceState`), in
/// an array sorted by name rather than a dictionary: a meter has one or two
/// of them, and a dictionary's storage costs about 200 bytes a meter at
/// 10,000 meters where this costs under 100. Looked up by comparing the
/// names, which are short.
struct GuardedCounters {
    private(set) var entries: [(name: String, state: CounterState)] = []

    subscript(name: String) -> CounterState? {
        get {
            for entry in entries where entry.name == name { return entry.state }
            return nil
        }
        // Assignments and a reading's check in place alike: one search.
        _modify {
            if let i = entries.firstIndex(where: { $0.name == name }) {
                var value: CounterState? = entries[i].state
                defer { if let value { entries[i].state = value } else { entries.remove(at: i) } }
                yield &value
            } else {
                var value: CounterState?
                defer { if let value { entries.insert((name, value), at: entries.firstIndex { $0.name > name } ?? entries.count) } }
                yield &value
            }
        }
    }

    /// The fields with a counter, in name order.
    var names: [String] { entries.map(\.name) }

    var isEmpty: Bool { entries.isEmpty }
}
