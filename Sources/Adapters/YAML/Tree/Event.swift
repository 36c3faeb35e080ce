/// One libyaml event with its strings copied into Swift, so nothing owned by C outlives
/// `EventParser.next()`. Block and flow collections are not told apart: the tree does
/// not care.
enum Event {
    case streamStart
    case streamEnd
    case documentStart(Mark)
    case documentEnd
    case scalar(YAMLScalar, NodeProperties)
    case alias(anchor: String, Mark)
    case sequenceStart(Mark, NodeProperties)
    case mappingStart(Mark, NodeProperties)
    /// The end of the innermost open sequence or mapping.
    case collectionEnd
}

/// The `&anchor` and `!tag` written before a node; both are unsupported, so they are
/// only kept to be reported.
struct NodeProperties {
    var anchor: String?
    var tag: String?
}
