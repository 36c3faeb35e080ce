import Foundation

/// A thread-safe list that handlers append to and tests wait on.
public final class Recorder<Element: Sendable>: @unchecked Sendable {
    private let condition = NSCondition()
    private var items: [Element] = []

    public init() {}

    public func append(_ item: Element) {
        condition.withLock {
            items.append(item)
            condition.broadcast()
        }
    }

    /// A snapshot, in append order.
    public var values: [Element] { condition.withLock { items } }

    /// Waits until at least `count` items or `timeout` seconds; returns the snapshot.
    @discardableResult
    public func waitFor(count: Int, timeout: Double = 5) -> [Element] {
        let deadline = Date(timeIntervalSinceNow: timeout)
        condition.lock()
        defer { condition.unlock() }
        while items.count < count {
            if !condition.wait(until: deadline) { break }
        }
        return items
    }

    /// Waits for the first item satisfying `predicate` (earlier ones included).
    public func waitFor(timeout: Double = 5, where predicate: (Element) -> Bool) -> Element? {
        let deadline = Date(timeIntervalSinceNow: timeout)
        condition.lock()
        defer { condition.unlock() }
        while true {
            if let match = items.first(where: predicate) { return match }
            if !condition.wait(until: deadline) { return items.first(where: predicate) }
        }
    }

    public func removeAll() { condition.withLock { items.removeAll() } }
}
