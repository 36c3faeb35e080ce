/// One `key: value` pair of a mapping. Keys are always scalars; anything else is
/// reported as unsupported and left out of the tree.
public struct YAMLEntry: Sendable {
    public var key: YAMLScalar
    public var value: YAMLNode

    public init(key: YAMLScalar, value: YAMLNode) {
        self.key = key
        self.value = value
    }
}
