import Clock

/// The config sender's pacing: which commands wait for their turn, and
/// which goes out next.
///
/// Each meter with something queued has its commands in the order they were
/// queued (`MeterCommandQueue`: an index into `commandNames` and a reason,
/// two bytes each, no message), and waits in one of three lines: `fresh`
/// (new to the queue), `resumed` (it already began, or retries: served
/// before new meters) and `spacing` (its previous command left less than
/// `minSpacing` seconds ago; ready in the order it becomes ready). A meter
/// is finished before new meters begin. Line entries carry the meter's
/// ticket: an entry with another ticket is stale (the meter was forgotten,
/// or lined up again since) and is dropped when met.
///
/// It holds what waits and nothing else: a command resolved while it waits
/// is taken out (`remove`), and the in-flight limit is the caller's (it
/// calls `next` only while a slot is free). One entry per meter seen,
/// removed by `forget`.
struct CommandPacer: Sendable {
    private struct Lane: Sendable {
        var queue = MeterCommandQueue()
        /// Non-zero while the meter waits in a line.
        var ticket = 0
        var lastSentAt: MonotonicInstant?
    }

    /// At least this long between two commands to one meter. 0: none.
    var minSpacingSeconds: Double
    /// What the queues' indexes name: the packs' command names.
    private(set) var commandNames: [String]
    private var indexes: [String: Int]
    private var lanes: [String: Lane] = [:]
    private var fresh = FIFO<(meter: String, ticket: Int)>()
    private var resumed = FIFO<(meter: String, ticket: Int)>()
    private var spacing = FIFO<(at: MonotonicInstant, meter: String, ticket: Int)>()
    private var nextTicket = 1
    /// Commands waiting, all meters together.
    private(set) var count = 0

    init(commandNames: [String], minSpacingSeconds: Double) {
        self.commandNames = commandNames
        self.indexes = Self.indexes(commandNames)
        self.minSpacingSeconds = minSpacingSeconds
    }

    /// When the first meter waiting out its spacing is ready; nil: none waits.
    var nextSpacingEnd: MonotonicInstant? { spacing.first?.at }

    /// Whether command `name` of meter `id` waits for its turn.
    func isQueued(_ name: String, of id: String) -> Bool {
        guard let index = indexes[name] else { return false }
        return lanes[id]?.queue.contains(command: index) == true
    }

    /// Whether any command of meter `id` waits.
    func hasQueued(_ id: String) -> Bool { lanes[id]?.queue.isEmpty == false }

    /// Meter `id`'s waiting commands in sending order, with the reason each was decided.
    func queued(of id: String) -> [(command: String, reason: CommandReason)] {
        lanes[id]?.queue.entries.map { (commandNames[$0.command], $0.reason) } ?? []
    }

    /// The meters with a command waiting, in no order.
    var queuedMeters: some Sequence<String> { lanes.lazy.filter { !$0.value.queue.isEmpty }.map(\.key) }

    /// Meters whose waiting commands outgrew their queue's word (an allocation each).
    var spilledMeters: Int { lanes.values.count { $0.queue.spilled } }

    /// Queues command `name` of meter `id` (once: a command already waiting
    /// keeps its place), and lines the meter up unless it is in a line.
    /// `first`: with the meters served before new ones. false when `name` is
    /// not one of `commandNames`.
    @discardableResult
    mutating func enqueue(_ name: String, for id: String, reason: CommandReason, first: Bool, now: MonotonicInstant) -> Bool {
        guard let index = indexes[name] else { return false }
        guard lanes[id]?.queue.contains(command: index) != true else { return true }
        lanes[id, default: Lane()].queue.append(.init(command: index, reason: reason))
        count += 1
        guard lanes[id]!.ticket == 0 else { return true }
        let ticket = nextTicket
        nextTicket += 1
        lanes[id]!.ticket = ticket
        if let last = lanes[id]!.lastSentAt, minSpacingSeconds > 0, now < last.adding(seconds: minSpacingSeconds) {
            spacing.append((last.adding(seconds: minSpacingSeconds), id, ticket))
        } else if first {
            resumed.append((id, ticket))
        } else {
            fresh.append((id, ticket))
        }
        return true
    }

    /// The next command to send now, taken from its meter's queue: meters
    /// whose spacing has passed first, then meters in the order they were
    /// queued. The meter is lined up again when more of its commands wait.
    /// nil: nothing can go now.
    mutating func next(now: MonotonicInstant) -> (meter: String, command: String, reason: CommandReason)? {
        while let waiting = spacing.first, now >= waiting.at {
            _ = spacing.popFirst()
            resumed.append((waiting.meter, waiting.ticket))
        }
        while let (id, ticket) = resumed.popFirst() ?? fresh.popFirst() {
            guard lanes[id]?.ticket == ticket else { continue }  // forgotten, or lined up again since
            let entry = lanes[id]!.queue.popFirst()
            if lanes[id]!.queue.isEmpty {
                lanes[id]!.ticket = 0
            } else if minSpacingSeconds > 0 {
                spacing.append((now.adding(seconds: minSpacingSeconds), id, ticket))
            } else {
                resumed.append((id, ticket))
            }
            if let entry {
                count -= 1
                return (id, commandNames[entry.command], entry.reason)
            }
        }
        return nil
    }

    /// A command of meter `id` left at `now`: its next one keeps the spacing.
    mutating func sent(_ id: String, at now: MonotonicInstant) {
        lanes[id, default: Lane()].lastSentAt = now
    }

    /// Command `name` of meter `id` was resolved while it waited: out of the
    /// queue (the meter's place in line stays, and is skipped when empty).
    /// false when it did not wait.
    @discardableResult
    mutating func remove(_ name: String, of id: String) -> Bool {
        guard let index = indexes[name], lanes[id]?.queue.remove(command: index) != nil else { return false }
        count -= 1
        return true
    }

    /// Meter `id` is gone: its queue and its places in the lines. Returns the names that waited.
    @discardableResult
    mutating func forget(_ id: String) -> [String] {
        let names = queued(of: id).map(\.command)
        count -= names.count
        lanes[id] = nil
        return names
    }

    /// New packs: the queues' indexes follow `names`; a waiting command no
    /// longer in them is dropped. Returns the dropped ones.
    mutating func replaceCommandNames(_ names: [String]) -> [(meter: String, command: String)] {
        guard names != commandNames else { return [] }
        let newIndexes = Self.indexes(names)
        let map = commandNames.map { newIndexes[$0] }
        var dropped: [(meter: String, command: String)] = []
        for id in lanes.keys where !lanes[id]!.queue.isEmpty {
            let (queue, gone) = lanes[id]!.queue.remapped { map[$0] }
            lanes[id]!.queue = queue
            dropped += gone.map { (id, commandNames[$0.command]) }
        }
        count -= dropped.count
        commandNames = names
        indexes = newIndexes
        return dropped.sorted { $0.meter == $1.meter ? $0.command < $1.command : $0.meter < $1.meter }
    }

    private static func indexes(_ names: [String]) -> [String: Int] {
        Dictionary(names.enumerated().map { ($1, $0) }, uniquingKeysWith: { first, _ in first })
    }
}

/// A first-in, first-out queue: an array and the index of its head.
struct FIFO<Element> {
    private var items: [Element] = []
    private var head = 0

    var isEmpty: Bool { head == items.count }
    var count: Int { items.count - head }
    var first: Element? { isEmpty ? nil : items[head] }

    mutating func append(_ element: Element) { items.append(element) }

    mutating func popFirst() -> Element? {
        guard !isEmpty else { return nil }
        let element = items[head]
        head += 1
        if head == items.count {
            items.removeAll(keepingCapacity: true)
            head = 0
        } else if head >= 1024 && head * 2 >= items.count {
            items.removeFirst(head)
            head = 0
        }
        return element
    }
}

extension FIFO: Sendable where Element: Sendable {}
