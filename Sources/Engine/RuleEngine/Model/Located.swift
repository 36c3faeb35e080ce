import YAML

/// A value with the place in its file where it was written.
public struct Located<Value: Sendable>: Sendable {
    public var value: Value
    public var mark: Mark
    public init(_ value: Value, _ mark: Mark) {
        self.value = value
        self.mark = mark
    }
}
