/// A route's clean topic, built for each reading from the meter's id.
///
/// The engine keeps no topic string per meter (two heap strings and their
/// array were about 190 bytes a meter, 1.9 MB at 10,000): the template's
/// parts that are the same for every meter (the site's root, the pack's
/// model and manufacturer, the literal text) are joined once here, and a
/// reading appends them and its meter's variables (`{id}`, `{context/}`, an
/// id form) into storage reused from the previous reading (`ProcessOutput`).
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

    /// Meter `id`'s topic, written over `out` (whose storage is reused when no one else holds it).
    func render(id: String, program: Program, into out: inout String) {
        out.removeAll(keepingCapacity: true)
        for part in parts {
            switch part {
            case .text(let s): out += s
            case .id: out += id
            case .variable(let name, let optional):
                if let v = program.variable(name, id: id), !v.isEmpty {
                    out += v
                    if optional { out += "/" }
                }
            }
        }
    }
}
