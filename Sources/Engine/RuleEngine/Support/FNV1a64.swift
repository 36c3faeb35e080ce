/// FNV-1a over 64 bits: deterministic across runs and platforms (unlike
/// Swift's `Hasher`, which is seeded per process), which keeps goldens, the
/// engine's duplicate keys and the config-sender's digests stable.
///
/// `FNV1a64.hash(id.utf8)` for one value; a `var h = FNV1a64()` and `add`
/// for a key of several parts.
public struct FNV1a64: Sendable {
    @usableFromInline var state: UInt64 = 0xcbf2_9ce4_8422_2325

    public init() {}

    /// The hash of everything added so far.
    @inlinable
    public var value: UInt64 { state }

    @inlinable
    public mutating func add(_ byte: UInt8) {
        state = (state ^ UInt64(byte)) &* 0x100_0000_01b3
    }

    @inlinable
    public mutating func add(_ bytes: some Sequence<UInt8>) {
        for b in bytes { add(b) }
    }

    /// The hash of `bytes`.
    @inlinable
    public static func hash(_ bytes: some Sequence<UInt8>) -> UInt64 {
        var h = FNV1a64()
        h.add(bytes)
        return h.value
    }
}

/// The engine's topic keys: a string closed so that two different sequences
/// of strings never run together.
extension FNV1a64 {
    mutating func add(_ s: String) {
        for b in s.utf8 { add(b) }
        add(UInt8(0xFF))
    }
}
