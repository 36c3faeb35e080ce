/// Entry point: YAML text in, a located node tree and its problems out.
public enum YAML {
    /// Parses one YAML document. A syntax error gives no tree and exactly one `.syntax`
    /// problem; otherwise every duplicate key and unsupported construct is collected and
    /// the tree is built around them.
    public static func parse(_ bytes: [UInt8]) -> YAMLParseResult {
        let parser = EventParser(bytes)
        var builder = TreeBuilder()
        do {
            while builder.consume(try parser.next()) == .more {}
        } catch {
            return YAMLParseResult(root: nil, problems: [error])
        }
        return builder.result
    }
}
