/// The tree (nil for an empty document or a syntax error) and every problem found.
/// A caller must not use `root` when `problems` is not empty without reporting them.
public struct YAMLParseResult: Sendable {
    public var root: YAMLNode?
    public var problems: [YAMLProblem]

    public init(root: YAMLNode?, problems: [YAMLProblem]) {
        self.root = root
        self.problems = problems
    }
}
