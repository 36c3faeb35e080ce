import YAML

/// Collects the diagnostics of one file while its nodes are read.
///
/// `package`: the site settings target reads its keys of a site config with
/// these helpers, from the same tree and into the same diagnostics.
package final class LoadContext {
    package let file: String
    /// A site config's diagnostics carry C-codes (`Diagnostic.inSiteConfig`).
    package let isSiteConfig: Bool
    package private(set) var diagnostics: [Diagnostic] = []

    package init(file: String, isSiteConfig: Bool = false) {
        self.file = file
        self.isSiteConfig = isSiteConfig
    }

    package func error(_ code: Diagnostic.Code, _ message: String, hint: String? = nil, at mark: Mark) {
        diagnostics.append(Diagnostic(coded(code), message, hint: hint, file: file, at: mark))
    }

    /// A problem that does not stop a service (a deprecated key, say): lint prints it and passes.
    package func warning(_ code: Diagnostic.Code, _ message: String, hint: String? = nil, at mark: Mark) {
        diagnostics.append(Diagnostic(coded(code), message, hint: hint, file: file, at: mark, severity: .warning))
    }

    private func coded(_ code: Diagnostic.Code) -> Diagnostic.Code {
        isSiteConfig ? Diagnostic.inSiteConfig(code) : code
    }

    /// Parses YAML bytes, turning the YAML layer's problems into diagnostics.
    package func parse(_ bytes: [UInt8]) -> YAMLNode? {
        let result = YAML.parse(bytes)
        for problem in result.problems {
            switch problem.kind {
            case .syntax:
                error(.yamlSyntax, problem.message, hint: "check indentation and quoting near this point", at: problem.mark)
            case .duplicateKey:
                let first = problem.related.map { "first written at line \($0.line)" }
                error(.duplicateKey, problem.message, hint: first.map { "\($0); remove one of them" }, at: problem.mark)
            case .unsupported:
                error(.yamlUnsupported, problem.message, hint: "write the value out in plain YAML", at: problem.mark)
            }
        }
        return result.root
    }

    // MARK: scalars

    package static func isNull(_ node: YAMLNode) -> Bool {
        if case .scalar(let s) = node, s.style == .plain, ["", "~", "null", "Null", "NULL"].contains(s.value) { return true }
        return false
    }

    package func string(_ node: YAMLNode, _ what: String) -> Located<String>? {
        guard case .scalar(let s) = node else {
            error(.wrongType, "\(what) must be a string, not a \(node.kindName)", at: node.mark)
            return nil
        }
        return Located(s.value, s.mark)
    }

    package func int(_ node: YAMLNode, _ what: String) -> Located<Int>? {
        guard case .scalar(let s) = node, s.style == .plain, let v = Int(s.value) else {
            error(.wrongType, "\(what) must be an integer", hint: describe(node), at: node.mark)
            return nil
        }
        return Located(v, s.mark)
    }

    package func double(_ node: YAMLNode, _ what: String) -> Located<Double>? {
        guard case .scalar(let s) = node, s.style == .plain, let v = Double(s.value) else {
            error(.wrongType, "\(what) must be a number", hint: describe(node), at: node.mark)
            return nil
        }
        return Located(v, s.mark)
    }

    package func bool(_ node: YAMLNode, _ what: String) -> Located<Bool>? {
        if case .scalar(let s) = node, s.style == .plain {
            if s.value == "true" { return Located(true, s.mark) }
            if s.value == "false" { return Located(false, s.mark) }
        }
        error(.wrongType, "\(what) must be true or false", hint: describe(node), at: node.mark)
        return nil
    }

    package func stringList(_ node: YAMLNode, _ what: String) -> [Located<String>]? {
        if LoadContext.isNull(node) { return [] }
        guard case .sequence(let items, _) = node else {
            error(.wrongType, "\(what) must be a list, not a \(node.kindName)", hint: "write it as [a, b] or one '- item' per line", at: node.mark)
            return nil
        }
        return items.compactMap { string($0, "an item of \(what)") }
    }

    private func describe(_ node: YAMLNode) -> String? {
        if case .scalar(let s) = node { return s.style == .plain ? "found '\(s.value)'" : "found a quoted string; remove the quotes" }
        return "found a \(node.kindName)"
    }

    /// The value if it is greater than 0; otherwise an error at it and nil.
    package func positive(_ value: Located<Int>?) -> Int? {
        guard let value else { return nil }
        guard value.value > 0 else {
            error(.invalidValue, "the value must be greater than 0", at: value.mark)
            return nil
        }
        return value.value
    }

    /// Reads a mapping, reporting unknown keys (with a suggestion) right away.
    package func mapping(_ node: YAMLNode, _ what: String, known: [String]) -> MappingReader? {
        guard case .mapping(let entries, let mark) = node else {
            if LoadContext.isNull(node) { return MappingReader(context: self, entries: [], mark: node.mark, what: what) }
            error(.wrongType, "\(what) must be a mapping, not a \(node.kindName)", at: node.mark)
            return nil
        }
        for entry in entries where !known.contains(entry.key.value) {
            error(.unknownKey, "unknown key '\(entry.key.value)' in \(what)",
                  hint: Suggestion.hint(for: entry.key.value, in: known) ?? "known keys: \(known.joined(separator: ", "))",
                  at: entry.key.mark)
        }
        return MappingReader(context: self, entries: entries.filter { known.contains($0.key.value) }, mark: mark, what: what)
    }

    /// Reads a mapping whose keys are names chosen by the author (routes, tags, meters).
    package func namedEntries(_ node: YAMLNode, _ what: String) -> [YAMLEntry]? {
        if LoadContext.isNull(node) { return [] }
        guard case .mapping(let entries, _) = node else {
            error(.wrongType, "\(what) must be a mapping, not a \(node.kindName)", at: node.mark)
            return nil
        }
        return entries
    }

    /// Reads `keys` of a mapping whose shape and keys another reader has
    /// checked already (a section of the site config that two targets share):
    /// reports nothing itself, so nothing is reported twice. nil: not a mapping.
    package func checkedMapping(_ node: YAMLNode, _ what: String, keys: [String]) -> MappingReader? {
        guard case .mapping(let entries, let mark) = node else { return nil }
        return MappingReader(context: self, entries: entries.filter { keys.contains($0.key.value) }, mark: mark, what: what)
    }
}

/// The known entries of one mapping.
package struct MappingReader {
    package let context: LoadContext
    package let entries: [YAMLEntry]
    package let mark: Mark
    package let what: String

    package func node(_ key: String) -> YAMLNode? {
        guard let node = entries.first(where: { $0.key.value == key })?.value, !LoadContext.isNull(node) else { return nil }
        return node
    }

    package func keyMark(_ key: String) -> Mark? { entries.first { $0.key.value == key }?.key.mark }

    package func required(_ key: String) -> YAMLNode? {
        if let node = node(key) { return node }
        context.error(.missingKey, "missing key '\(key)' in \(what)", at: mark)
        return nil
    }

    package func string(_ key: String, required: Bool = false) -> Located<String>? {
        guard let n = required ? self.required(key) : node(key) else { return nil }
        return context.string(n, "'\(key)'")
    }

    package func int(_ key: String, required: Bool = false) -> Located<Int>? {
        guard let n = required ? self.required(key) : node(key) else { return nil }
        return context.int(n, "'\(key)'")
    }

    package func double(_ key: String) -> Located<Double>? {
        node(key).flatMap { context.double($0, "'\(key)'") }
    }

    package func bool(_ key: String) -> Located<Bool>? {
        node(key).flatMap { context.bool($0, "'\(key)'") }
    }

    package func stringList(_ key: String) -> [Located<String>]? {
        node(key).flatMap { context.stringList($0, "'\(key)'") }
    }
}

extension YAMLNode {
    var kindName: String {
        switch self {
        case .scalar: "scalar"
        case .mapping: "mapping"
        case .sequence: "list"
        }
    }
}
