/// A password source that exists but cannot be read. One sentence, for the log.
public struct PasswordError: Error, Sendable, CustomStringConvertible {
    public var message: String

    public init(_ message: String) {
        self.message = message
    }

    public var description: String { message }
}
