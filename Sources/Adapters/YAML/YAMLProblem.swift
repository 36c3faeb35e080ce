/// Something wrong with the YAML text itself, before any meaning is given to it.
public struct YAMLProblem: Sendable, Error {
    public enum Kind: Sendable {
        /// libyaml rejected the text; there is no tree.
        case syntax
        /// A key appears twice in one mapping; the first occurrence is kept.
        case duplicateKey
        /// Valid YAML we do not accept: anchors, aliases, tags, non-scalar keys,
        /// more than one document.
        case unsupported
    }

    public var kind: Kind
    public var message: String
    public var mark: Mark
    /// For `.duplicateKey`: where the first occurrence is.
    public var related: Mark?

    public init(kind: Kind, message: String, mark: Mark, related: Mark? = nil) {
        self.kind = kind
        self.message = message
        self.mark = mark
        self.related = related
    }
}
