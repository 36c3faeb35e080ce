import RuleEngine

/// A unified diff of two line lists (`---`/`+++`, `@@` hunks, 3 lines of context).
///
/// A changed line (a `-` line replaced by a `+` line) is followed by a `?`
/// line that points at the differing span, so a change inside a long Home
/// Assistant config line can be found: a caret line under a short line, an
/// excerpt with the span in `[…]` and its column for a long one.
public enum UnifiedDiff {
    /// Lines longer than this get an excerpt instead of a caret line.
    static let caretWidth = 100

    /// The `?` line for `old` replaced by `new`: common head and tail skipped.
    public static func marker(_ old: String, _ new: String) -> String {
        let a = Array(old), b = Array(new)
        var head = 0
        while head < a.count && head < b.count && a[head] == b[head] { head += 1 }
        var tail = 0
        while tail < a.count - head && tail < b.count - head && a[a.count - 1 - tail] == b[b.count - 1 - tail] { tail += 1 }
        let changed = b.count - head - tail
        if b.count <= caretWidth {
            return "?" + String(repeating: " ", count: head) + String(repeating: "^", count: max(1, changed))
        }
        let context = 20
        func excerpt(_ c: [Character]) -> String {
            let from = max(0, head - context), to = min(c.count, c.count - tail + context)
            let span = String(c[head..<(c.count - tail)])
            return (from > 0 ? "…" : "") + String(c[from..<head]) + "[" + span + "]" + String(c[(c.count - tail)..<to]) + (to < c.count ? "…" : "")
        }
        return "? column \(head + 1): \(excerpt(a)) → \(excerpt(b))"
    }

    /// The hunk body with a `?` line after each `+` line that replaces a `-` line.
    static func marked(_ body: [String]) -> [String] {
        var out: [String] = []
        var k = 0
        while k < body.count {
            guard !body[k].hasPrefix(" ") else { out.append(body[k]); k += 1; continue }
            // A block of changes: removals first, then additions (either order is a valid diff).
            var dels: [String] = [], ins: [String] = []
            while k < body.count && !body[k].hasPrefix(" ") {
                if body[k].hasPrefix("-") { dels.append(body[k]) } else { ins.append(body[k]) }
                k += 1
            }
            out += dels
            for (i, line) in ins.enumerated() {
                out.append(line)
                if i < dels.count { out.append(marker(String(dels[i].dropFirst()), String(line.dropFirst()))) }
            }
        }
        return out
    }

    public static func diff(_ a: [String], _ b: [String], fromName: String, toName: String, context: Int = 3) -> String? {
        guard a != b else { return nil }
        // Trim the common head and tail; the LCS table only covers the middle.
        var head = 0
        while head < a.count && head < b.count && a[head] == b[head] { head += 1 }
        var tail = 0
        while tail < a.count - head && tail < b.count - head && a[a.count - 1 - tail] == b[b.count - 1 - tail] { tail += 1 }
        let x = Array(a[head..<(a.count - tail)]), y = Array(b[head..<(b.count - tail)])
        var lcs = [[Int32]](repeating: [Int32](repeating: 0, count: y.count + 1), count: x.count + 1)
        if !x.isEmpty && !y.isEmpty {
            for i in stride(from: x.count - 1, through: 0, by: -1) {
                for j in stride(from: y.count - 1, through: 0, by: -1) {
                    lcs[i][j] = x[i] == y[j] ? lcs[i + 1][j + 1] + 1 : max(lcs[i + 1][j], lcs[i][j + 1])
                }
            }
        }
        enum Op { case same(Int, Int), del(Int), ins(Int) }
        var ops: [Op] = (0..<head).map { .same($0, $0) }
        var i = 0, j = 0
        while i < x.count || j < y.count {
            if i < x.count && j < y.count && x[i] == y[j] { ops.append(.same(head + i, head + j)); i += 1; j += 1 }
            else if j < y.count && (i == x.count || lcs[i][j + 1] >= lcs[i + 1][j]) { ops.append(.ins(head + j)); j += 1 }
            else { ops.append(.del(head + i)); i += 1 }
        }
        for k in 0..<tail { ops.append(.same(a.count - tail + k, b.count - tail + k)) }

        var out = ["--- \(fromName)", "+++ \(toName)"]
        var k = 0
        while k < ops.count {
            guard case .same = ops[k] else {
                // A hunk: from `context` lines before this change to `context` after the last nearby change.
                let startOp = max(0, k - context)
                var endOp = k
                var lastChange = k
                while endOp < ops.count {
                    if case .same = ops[endOp] {
                        if endOp - lastChange > 2 * context { break }
                    } else {
                        lastChange = endOp
                    }
                    endOp += 1
                }
                endOp = min(ops.count, lastChange + context + 1)
                var aStart = 0, bStart = 0, aLen = 0, bLen = 0
                var body: [String] = []
                var first = true
                for op in ops[startOp..<endOp] {
                    switch op {
                    case .same(let ai, let bi):
                        if first { aStart = ai; bStart = bi; first = false }
                        aLen += 1; bLen += 1
                        body.append(" " + a[ai])
                    case .del(let ai):
                        if first { aStart = ai; bStart = nextB(ops, startOp); first = false }
                        aLen += 1
                        body.append("-" + a[ai])
                    case .ins(let bi):
                        if first { aStart = nextA(ops, startOp); bStart = bi; first = false }
                        bLen += 1
                        body.append("+" + b[bi])
                    }
                }
                out.append("@@ -\(aStart + (aLen > 0 ? 1 : 0)),\(aLen) +\(bStart + (bLen > 0 ? 1 : 0)),\(bLen) @@")
                out += marked(body)
                k = endOp
                continue
            }
            k += 1
        }
        return out.joined(separator: "\n")

        func nextA(_ ops: [Op], _ from: Int) -> Int {
            for op in ops[from...] { switch op { case .same(let ai, _), .del(let ai): return ai; default: continue } }
            return a.count
        }
        func nextB(_ ops: [Op], _ from: Int) -> Int {
            for op in ops[from...] { switch op { case .same(_, let bi), .ins(let bi): return bi; default: continue } }
            return b.count
        }
    }
}
