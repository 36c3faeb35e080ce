/// A first-in first-out queue with amortised O(1) `append`, `popFirst` and
/// `prepend` (two stacks). Not thread-safe: its owner locks.
struct FIFO<Element> {
    /// The front part, reversed: its last element is the first of the queue.
    private var front: [Element] = []
    private var back: [Element] = []

    var count: Int { front.count + back.count }
    var isEmpty: Bool { front.isEmpty && back.isEmpty }

    mutating func append(_ element: Element) {
        back.append(element)
    }

    /// Puts `element` back at the front (a message that could not be handed on).
    mutating func prepend(_ element: Element) {
        front.append(element)
    }

    mutating func popFirst() -> Element? {
        if front.isEmpty {
            guard !back.isEmpty else { return nil }
            front = back.reversed()
            back.removeAll(keepingCapacity: true)
        }
        return front.popLast()
    }
}
