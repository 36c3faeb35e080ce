/// What changed among the guarded counters since the service last asked
/// (`Engine.takeCounterChanges`): the service writes these rows, and needs
/// no copy of every counter to find them.
public struct CounterChanges: Sendable, Equatable {
    /// The counters of the meters whose counters moved, as they are now.
    public var changed: [CounterSnapshot]
    /// Counters no longer remembered (`forgetCounters`, or left out by a
    /// reload): their rows go. Applied before `changed`, which may bring one back.
    public var forgotten: [Key]

    public struct Key: Sendable, Hashable {
        public var device: String
        public var field: String
        public init(device: String, field: String) {
            self.device = device
            self.field = field
        }
    }

    public init(changed: [CounterSnapshot] = [], forgotten: [Key] = []) {
        self.changed = changed
        self.forgotten = forgotten
    }

    public var isEmpty: Bool { changed.isEmpty && forgotten.isEmpty }
}
