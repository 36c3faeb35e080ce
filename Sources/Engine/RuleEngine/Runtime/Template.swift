/// A topic or payload template: literal text with `{name}` variables.
///
/// `{name/}` is an optional level: it renders as `value/` when the variable
/// has a value and as nothing when it has none (e.g. `{root}/{context/}{id}`).
public struct Template: Sendable, CustomStringConvertible {
    enum Part: Sendable {
        case literal(String)
        case variable(String, optionalLevel: Bool)
    }
    let parts: [Part]
    public let source: String
    public var description: String { source }

    public struct SyntaxError: Error, Sendable {
        public var message: String
        public var offset: Int
    }

    public init(_ source: String) throws(SyntaxError) {
        self.source = source
        var parts: [Part] = []
        var literal = ""
        var chars = source.makeIterator()
        var offset = 0
        while let c = chars.next() {
            offset += 1
            if c == "}" { throw SyntaxError(message: "unmatched '}'", offset: offset - 1) }
            guard c == "{" else { literal.append(c); continue }
            let start = offset - 1
            var name = ""
            var closed = false
            while let d = chars.next() {
                offset += 1
                if d == "}" { closed = true; break }
                if d == "{" { throw SyntaxError(message: "'{' inside a variable", offset: offset - 1) }
                name.append(d)
            }
            guard closed else { throw SyntaxError(message: "unclosed '{'", offset: start) }
            let optional = name.hasSuffix("/")
            if optional { name.removeLast() }
            guard !name.isEmpty else { throw SyntaxError(message: "empty variable name", offset: start) }
            if !literal.isEmpty { parts.append(.literal(literal)); literal = "" }
            parts.append(.variable(name, optionalLevel: optional))
        }
        if !literal.isEmpty { parts.append(.literal(literal)) }
        self.parts = parts
    }

    /// The names of the variables, in order.
    public var variables: [String] {
        parts.compactMap { if case .variable(let name, _) = $0 { name } else { nil } }
    }

    /// Renders with `lookup`; a variable without a value renders as nothing.
    public func render(_ lookup: (String) -> String?) -> String {
        var out = ""
        for part in parts {
            switch part {
            case .literal(let s): out += s
            case .variable(let name, let optional):
                if let v = lookup(name), !v.isEmpty {
                    out += v
                    if optional { out += "/" }
                }
            }
        }
        return out
    }
}
