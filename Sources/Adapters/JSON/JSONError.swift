/// Why jansson rejected a document: its message and where, as jansson counts (line and
/// column from 1, the column in characters; position in bytes from the start).
public struct JSONError: Error, Sendable, CustomStringConvertible {
    public var message: String
    public var line: Int
    public var column: Int
    public var position: Int

    public init(message: String, line: Int, column: Int, position: Int) {
        self.message = message
        self.line = line
        self.column = column
        self.position = position
    }

    /// `line:column: message`.
    public var description: String { "\(line):\(column): \(message)" }
}
