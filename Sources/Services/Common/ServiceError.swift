/// A start-up problem of a service that is not a rule or config diagnostic:
/// an unreadable password file, a bad broker URL. One sentence, for the log.
public struct ServiceError: Error, Sendable, CustomStringConvertible {
    public var message: String

    public init(_ message: String) {
        self.message = message
    }

    public var description: String { message }
}
