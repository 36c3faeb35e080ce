import RuleEngine

/// `config_sender.partition: "k/N"`: this config sender configures the meters
/// whose id hashes to `k` out of `N` (FNV-1a 64 of the id's bytes, modulo N).
/// N config senders with 0/N … (N−1)/N configure each meter exactly once,
/// with no coordination; the split does not move when meters come and go.
public struct Partition: Sendable, Equatable, CustomStringConvertible {
    public let index: Int
    public let count: Int

    /// `"k/N"` with 0 ≤ k < N; nil otherwise.
    public init?(_ text: String) {
        let parts = text.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count == 2, let k = Int(parts[0]), let n = Int(parts[1]), n >= 1, (0..<n).contains(k) else { return nil }
        index = k
        count = n
    }

    public func contains(_ id: String) -> Bool {
        Int(FNV1a64.hash(id.utf8) % UInt64(count)) == index
    }

    public var description: String { "\(index)/\(count)" }
}
