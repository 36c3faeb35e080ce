/// A scalar exactly as written: its text (escapes resolved, no type guessed), its style
/// and where it starts.
public struct YAMLScalar: Sendable {
    public var value: String
    public var style: ScalarStyle
    public var mark: Mark

    public init(value: String, style: ScalarStyle, mark: Mark) {
        self.value = value
        self.style = style
        self.mark = mark
    }
}
