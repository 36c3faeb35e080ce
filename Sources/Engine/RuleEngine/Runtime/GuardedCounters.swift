/// One meter's guarded counters by field name (`Engine.DeviceState`), in
/// an array sorted by name rather than a dictionary: a meter has one or two
/// of them, and a dictionary's storage costs about 200 bytes a meter at
/// 10,000 meters where this costs under 100. Looked up by comparing the
/// names, which are short: the engine's own names are the same small
/// strings, equal in their first comparison of raw bits.
struct GuardedCounters {
    private(set) var entries: [(name: String, state: CounterState)] = []

    /// Where field `name`'s counter is, if it has one (a plain loop: a
    /// reading's check runs no closure and no accessor coroutine, whose
    /// frame was allocated on the heap per reading).
    func index(of name: String) -> Int? {
        var i = 0
        while i < entries.count {
            if entries[i].name == name { return i }
            i += 1
        }
        return nil
    }

    /// The counter at `i`, an index from `index(of:)`.
    subscript(at i: Int) -> CounterState {
        get { entries[i].state }
        set { entries[i].state = newValue }
    }

    /// Adds field `name`'s counter, which `index(of:)` did not find, in name order.
    mutating func insert(_ name: String, _ state: CounterState) {
        var i = 0
        while i < entries.count && entries[i].name < name { i += 1 }
        entries.insert((name, state), at: i)
    }

    subscript(name: String) -> CounterState? {
        get { index(of: name).map { entries[$0].state } }
        set {
            switch (index(of: name), newValue) {
            case let (i?, value?): entries[i].state = value
            case let (i?, nil): entries.remove(at: i)
            case let (nil, value?): insert(name, value)
            case (nil, nil): break
            }
        }
    }

    /// The fields with a counter, in name order.
    var names: [String] { entries.map(\.name) }

    var isEmpty: Bool { entries.isEmpty }
}
