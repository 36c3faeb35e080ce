/// A binary min-heap: `first` is the smallest element by `less`. The event
/// loop's timers and config-sender's deadlines, where many meters each have
/// one, stay O(log n) per change.
public struct MinHeap<Element> {
    private var items: [Element] = []
    private let less: @Sendable (Element, Element) -> Bool

    public init(by less: @escaping @Sendable (Element, Element) -> Bool) {
        self.less = less
    }

    public var first: Element? { items.first }
    public var count: Int { items.count }
    public var isEmpty: Bool { items.isEmpty }

    public mutating func push(_ element: Element) {
        items.append(element)
        var i = items.count - 1
        while i > 0 {
            let parent = (i - 1) / 2
            guard less(items[i], items[parent]) else { break }
            items.swapAt(i, parent)
            i = parent
        }
    }

    /// Removes and returns the smallest element.
    @discardableResult
    public mutating func popFirst() -> Element? {
        guard !items.isEmpty else { return nil }
        items.swapAt(0, items.count - 1)
        let first = items.removeLast()
        var i = 0
        while true {
            let l = 2 * i + 1, r = l + 1
            var smallest = i
            if l < items.count && less(items[l], items[smallest]) { smallest = l }
            if r < items.count && less(items[r], items[smallest]) { smallest = r }
            guard smallest != i else { return first }
            items.swapAt(i, smallest)
            i = smallest
        }
    }
}

extension MinHeap: Sendable where Element: Sendable {}
