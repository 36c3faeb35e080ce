/// Builds the node tree from events and collects every duplicate key and unsupported
/// construct on the way. Pure Swift: libyaml stays in `EventParser`.
///
/// Iterative, with an explicit stack of open collections, so deeply nested input cannot
/// overflow the call stack.
struct TreeBuilder {
    enum Progress { case more, done }

    private var root: YAMLNode?
    private var problems: [YAMLProblem] = []
    private var open: [OpenCollection] = []
    private var documentCount = 0

    var result: YAMLParseResult { YAMLParseResult(root: root, problems: problems) }

    /// Takes the next event; `.done` once there is nothing more to read.
    mutating func consume(_ event: Event) -> Progress {
        switch event {
        case .streamStart, .documentEnd:
            break
        case .streamEnd:
            return .done
        case .documentStart(let mark):
            documentCount += 1
            if documentCount > 1 {
                // The rest of the stream is not read: one file is one document.
                unsupported("more than one document in one file; remove the '---' separator", at: mark)
                return .done
            }
        case .scalar(let scalar, let properties):
            check(properties, at: scalar.mark)
            add(.scalar(scalar))
        case .alias(let anchor, let mark):
            unsupported("alias '*\(anchor)' is not supported; write the value out", at: mark)
            // Stands in for the aliased node so the tree keeps its shape.
            add(.scalar(YAMLScalar(value: "", style: .plain, mark: mark)), isPlaceholder: true)
        case .sequenceStart(let mark, let properties):
            check(properties, at: mark)
            open.append(OpenCollection(mark: mark, isMapping: false))
        case .mappingStart(let mark, let properties):
            check(properties, at: mark)
            open.append(OpenCollection(mark: mark, isMapping: true))
        case .collectionEnd:
            // libyaml pairs every end with a start, so the stack is not empty here.
            add(open.removeLast().node)
        }
        return .more
    }

    private mutating func add(_ node: YAMLNode, isPlaceholder: Bool = false) {
        guard !open.isEmpty else {
            // An empty document is one empty plain scalar; callers want no tree then.
            root = isPlaceholder || node.isEmptyPlainScalar ? nil : node
            return
        }
        if let problem = open[open.count - 1].add(node, isPlaceholder: isPlaceholder) {
            problems.append(problem)
        }
    }

    private mutating func check(_ properties: NodeProperties, at mark: Mark) {
        if let anchor = properties.anchor {
            unsupported("anchor '&\(anchor)' is not supported; write the value out", at: mark)
        }
        if let tag = properties.tag {
            unsupported("tag '\(tag)' is not supported; remove it", at: mark)
        }
    }

    private mutating func unsupported(_ message: String, at mark: Mark) {
        problems.append(YAMLProblem(kind: .unsupported, message: message, mark: mark))
    }
}

/// A sequence or mapping whose end event has not arrived yet.
private struct OpenCollection {
    /// A mapping alternates key, value. A dropped key (not a scalar, an alias, or a
    /// duplicate) drops its value too.
    enum PendingKey {
        case none
        case key(YAMLScalar)
        case dropped
    }

    let mark: Mark
    let isMapping: Bool
    var items: [YAMLNode] = []
    var entries: [YAMLEntry] = []
    var firstKeyMarks: [String: Mark] = [:]
    var pendingKey = PendingKey.none

    var node: YAMLNode { isMapping ? .mapping(entries, mark) : .sequence(items, mark) }

    /// Adds a finished child; returns the problem it causes, if any.
    mutating func add(_ node: YAMLNode, isPlaceholder: Bool) -> YAMLProblem? {
        guard isMapping else {
            items.append(node)
            return nil
        }
        switch pendingKey {
        case .key(let key):
            entries.append(YAMLEntry(key: key, value: node))
            pendingKey = .none
            return nil
        case .dropped:
            pendingKey = .none
            return nil
        case .none:
            return addKey(node, isPlaceholder: isPlaceholder)
        }
    }

    private mutating func addKey(_ node: YAMLNode, isPlaceholder: Bool) -> YAMLProblem? {
        pendingKey = .dropped
        if isPlaceholder { return nil }  // the alias is already reported
        guard case .scalar(let key) = node else {
            return YAMLProblem(
                kind: .unsupported,
                message: "a mapping or sequence as a key is not supported; keys must be scalars",
                mark: node.mark)
        }
        // Keys compare by text: `1` and `'1'` are the same key here.
        if let first = firstKeyMarks[key.value] {
            return YAMLProblem(
                kind: .duplicateKey, message: "duplicate key '\(key.value)'",
                mark: key.mark, related: first)
        }
        firstKeyMarks[key.value] = key.mark
        pendingKey = .key(key)
        return nil
    }
}

extension YAMLNode {
    fileprivate var isEmptyPlainScalar: Bool {
        if case .scalar(let scalar) = self { scalar.style == .plain && scalar.value.isEmpty } else { false }
    }
}
