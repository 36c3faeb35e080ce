/// A node of the tree, each with the position where it starts. Mappings keep the order
/// of the source and hold each key once (the first occurrence).
public indirect enum YAMLNode: Sendable {
    case scalar(YAMLScalar)
    case mapping([YAMLEntry], Mark)
    case sequence([YAMLNode], Mark)

    /// Where the node starts: the first character of a scalar, the `{`/`[` of a flow
    /// collection, the first key or `-` of a block collection.
    public var mark: Mark {
        switch self {
        case .scalar(let scalar): scalar.mark
        case .mapping(_, let mark), .sequence(_, let mark): mark
        }
    }
}
