/// A position in the source text: 1-based line, 1-based column counted in characters.
public struct Mark: Sendable, Hashable {
    public var line: Int
    public var column: Int

    public init(line: Int, column: Int) {
        self.line = line
        self.column = column
    }
}

extension Mark: CustomStringConvertible {
    /// `line:column`, the form diagnostics print after the file name.
    public var description: String { "\(line):\(column)" }
}
