import Clock

/// The config sender's pacing: which queued command goes out next.
///
/// Each meter has a queue of command names, in the order they were queued.
/// A meter with something queued waits in one of three lines: `fresh` (new to
/// the queue), `resumed` (it already began, or retries: served before new
/// meters) and `spacing` (its previous command left less than `minSpacing`
/// seconds ago; ready in the order it becomes ready). A meter is finished
/// before new meters begin. Line entries carry the meter's ticket: an entry
/// with another ticket is stale (the meter was forgotten, or lined up again
/// since) and is dropped when met.
///
/// It only orders names: whether a name still waits is the caller's
/// (`next`'s `isQueued`), and so is the in-flight limit (it calls `next`
/// only while a slot is free). One entry per meter seen, removed by `forget`.
struct CommandPacer: Sendable {
    private struct Lane: Sendable {
        /// Queued command names in sending order (a resolved one is skipped).
        var queue: [String] = []
        /// Non-zero while the meter waits in a line.
        var ticket = 0
        var lastSentAt: MonotonicInstant?
    }

    /// At least this long between two commands to one meter. 0: none.
    var minSpacingSeconds: Double
    private var lanes: [String: Lane] = [:]
    private var fresh = FIFO<(meter: String, ticket: Int)>()
    private var resumed = FIFO<(meter: String, ticket: Int)>()
    private var spacing = FIFO<(at: MonotonicInstant, meter: String, ticket: Int)>()
    private var nextTicket = 1

    init(minSpacingSeconds: Double) {
        self.minSpacingSeconds = minSpacingSeconds
    }

    /// When the first meter waiting out its spacing is ready; nil: none waits.
    var nextSpacingEnd: MonotonicInstant? { spacing.first?.at }

    /// Queues command `name` of meter `id`, and lines the meter up unless it
    /// is in a line. `first`: with the meters served before new ones.
    mutating func enqueue(_ name: String, for id: String, first: Bool, now: MonotonicInstant) {
        lanes[id, default: Lane()].queue.append(name)
        guard lanes[id]!.ticket == 0 else { return }
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
    }

    /// The next command to send now: meters whose spacing has passed first,
    /// then meters in the order they were queued. Names for which `isQueued`
    /// is false (resolved while queued) are skipped. The meter is lined up
    /// again when more of its commands wait. nil: nothing can go now.
    mutating func next(now: MonotonicInstant, isQueued: (_ meter: String, _ command: String) -> Bool) -> (meter: String, command: String)? {
        while let waiting = spacing.first, now >= waiting.at {
            _ = spacing.popFirst()
            resumed.append((waiting.meter, waiting.ticket))
        }
        while let (id, ticket) = resumed.popFirst() ?? fresh.popFirst() {
            guard lanes[id]?.ticket == ticket else { continue }  // forgotten, or lined up again since
            var found: String?
            while found == nil, let name = lanes[id]!.queue.first {
                lanes[id]!.queue.removeFirst()
                if isQueued(id, name) { found = name }
            }
            if lanes[id]!.queue.isEmpty {
                lanes[id]!.ticket = 0
            } else if minSpacingSeconds > 0 {
                spacing.append((now.adding(seconds: minSpacingSeconds), id, ticket))
            } else {
                resumed.append((id, ticket))
            }
            if let found { return (id, found) }
        }
        return nil
    }

    /// A command of meter `id` left at `now`: its next one keeps the spacing.
    mutating func sent(_ id: String, at now: MonotonicInstant) {
        lanes[id, default: Lane()].lastSentAt = now
    }

    /// Meter `id` is gone: its queue and its places in the lines.
    mutating func forget(_ id: String) {
        lanes[id] = nil
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
