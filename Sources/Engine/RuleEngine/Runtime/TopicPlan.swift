/// A route's clean topic, built for each reading from the meter's id.
///
/// The engine keeps no topic string per meter (two heap strings and their
/// array were about 190 bytes a meter, 1.9 MB at 10,000): the template's
/// parts that are the same for every meter (the site's root, the pack's
/// model and manufacturer, the literal text) are joined once here, and a
/// reading writes them and its meter's variables (`{id}`, `{context/}`, an
/// id form) into one string of the topic's size.
struct TopicPlan: Sendable {
    enum Part: Sendable {
        case text(String)
        case id
        case variable(String, optionalLevel: Bool)
    }
    let parts: [Part]

    init(_ template: Template, program: Program) {
        var parts: [Part] = []
        var text = ""
        for part in template.parts {
            switch part {
            case .literal(let s):
                text += s
            case .variable(let name, let optional) where Program.isConstant(name):
                // Rendered as `Template.render` does: nothing when empty, `value/` for an optional level.
                if let v = program.variable(name, id: ""), !v.isEmpty { text += optional ? v + "/" : v }
            case .variable("context", _) where program.site.contexts.isEmpty:
                // No meter has a context: nothing to look up per reading.
                continue
            case .variable(let name, let optional):
                if !text.isEmpty { parts.append(.text(text)); text = "" }
                parts.append(name == "id" && !optional ? .id : .variable(name, optionalLevel: optional))
            }
        }
        if !text.isEmpty { parts.append(.text(text)) }
        self.parts = parts
    }

    /// Meter `id`'s topic: its length first, then one allocation of that
    /// size written in place (appending piece by piece would cost a String
    /// growth check per piece, and a first piece short enough to be a small
    /// string gives up any storage kept from before).
    func render(id: String, program: Program) -> String {
        var count = 0
        forEachPiece(id: id, program: program) { count += $0.utf8.count }
        return String(unsafeUninitializedCapacity: count) { buffer in
            var at = 0
            forEachPiece(id: id, program: program) { piece in
                let copied = piece.utf8.withContiguousStorageIfAvailable { bytes in
                    UnsafeMutableBufferPointer(rebasing: buffer[at..<at + bytes.count]).update(fromContentsOf: bytes)
                }
                if copied == nil { for b in piece.utf8 { buffer[at] = b; at += 1 } } else { at += piece.utf8.count }
            }
            return at
        }
    }

    /// The topic's pieces in order, with the meter's variables looked up.
    private func forEachPiece(id: String, program: Program, _ body: (String) -> Void) {
        for part in parts {
            switch part {
            case .text(let s): body(s)
            case .id: body(id)
            case .variable(let name, let optional):
                if let v = program.variable(name, id: id), !v.isEmpty {
                    body(v)
                    if optional { body("/") }
                }
            }
        }
    }
}
