/// Fresh random operation ids (`oprid`) of an exact length, lower-case hex.
///
/// A meter sees the ids of the commands it gets, so an id must tell nothing
/// of any other: each is made of fresh bytes from the system's CSPRNG
/// (`getrandom(2)`), not from a fast generator whose outputs give its state
/// away. Tests that need ids to repeat inject a generator.
public struct OperationIDGenerator: Sendable {
    /// nil: the system's CSPRNG.
    private var injected: (any RandomNumberGenerator & Sendable)?

    /// Ids from `getrandom(2)`.
    public init() {}

    /// Ids from `generator`: deterministic, for tests.
    public init(_ generator: some RandomNumberGenerator & Sendable) {
        injected = generator
    }

    /// A new id of exactly `length` hex digits.
    public mutating func make(length: Int) -> String {
        var bytes = [UInt8](repeating: 0, count: (length + 1) / 2)
        if var generator = injected {
            for i in bytes.indices { bytes[i] = UInt8(truncatingIfNeeded: generator.next()) }
            injected = generator
        } else {
            Self.systemRandom(&bytes)
        }
        let digits = Array("0123456789abcdef".utf8)
        var text: [UInt8] = []
        text.reserveCapacity(length)
        for byte in bytes {
            text.append(digits[Int(byte >> 4)])
            if text.count < length { text.append(digits[Int(byte & 0xF)]) }
        }
        return String(decoding: text.prefix(length), as: UTF8.self)
    }

    /// Fills `bytes` from the kernel's CSPRNG: on Linux the standard
    /// library's `SystemRandomNumberGenerator` is `getrandom(2)` (flags 0: it
    /// blocks only until the pool is first initialised at boot; it falls back
    /// to `/dev/urandom` where the call does not exist), and it stops the
    /// process rather than return a guessable value when neither works.
    static func systemRandom(_ bytes: inout [UInt8]) {
        var system = SystemRandomNumberGenerator()
        var i = 0
        while i < bytes.count {
            var word = system.next()
            for _ in 0..<8 where i < bytes.count {
                bytes[i] = UInt8(truncatingIfNeeded: word)
                word >>= 8
                i += 1
            }
        }
    }
}
