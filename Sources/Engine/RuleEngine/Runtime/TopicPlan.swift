/// A route's clean topic, built for each reading from the meter's id.
///
/// The engine keeps no topic string per meter (two heap strings and their
/// array were about 190 bytes a meter, 1.9 MB at 10,000): the template's
/// parts that are the same for every meter (the site's root, the pack's
/// model and manufacturer, the literal text) are joined once here, and a
/// reading writes them and its meter's variables (`{id}`, `{context/}`, an
/// id form) into the bytes of the last reading's topic.
struct TopicPlan: Sendable {
    enum Part: Sendable {
        case text([UInt8])
        case id
        case variable(String, optionalLevel: Bool)
    }
    let parts: [Part]
    /// The bytes of the text parts: a topic is this long plus its variables.
    let textCount: Int
    /// How many times `{id}` appears.
    let idCount: Int
    /// No variable but `{id}`: a reading looks nothing up (every pack's topics today).
    let idOnly: Bool

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
                if !text.isEmpty { parts.append(.text(Array(text.utf8))); text = "" }
                parts.append(name == "id" && !optional ? .id : .variable(name, optionalLevel: optional))
            }
        }
        if !text.isEmpty { parts.append(.text(Array(text.utf8))) }
        self.parts = parts
        textCount = parts.reduce(0) { if case .text(let bytes) = $1 { $0 + bytes.count } else { $0 } }
        idCount = parts.count { if case .id = $0 { true } else { false } }
        idOnly = parts.allSatisfy { if case .variable = $0 { false } else { true } }
    }

    /// Meter `id`'s topic, written over `out`, whose storage is reused when
    /// it has room and no other owner (`ProcessOutput`'s spare topic): the
    /// topic of one meter after another is the same size, so a reading
    /// allocates nothing and only copies its pieces in.
    func render(id: String, program: Program, into out: inout [UInt8]) {
        guard idOnly else {
            let topic = renderLookingUp(id: id, program: program)
            out.resize(to: topic.utf8.count)
            out.withUnsafeMutableBufferPointer { _ = $0.initialize(from: topic.utf8) }
            return
        }
        var id = id
        id.withUTF8 { id in
            out.resize(to: textCount + idCount * id.count)
            out.withUnsafeMutableBufferPointer { buffer in
                var at = 0
                for part in parts {
                    switch part {
                    case .text(let bytes): at = bytes.withUnsafeBufferPointer { buffer[at...].initialize(fromContentsOf: $0) }
                    case .id: at = buffer[at...].initialize(fromContentsOf: id)
                    case .variable: break
                    }
                }
            }
        }
    }

    /// `render` for a topic with variables other than the id (a context, an id form).
    private func renderLookingUp(id: String, program: Program) -> String {
        var topic = ""
        for part in parts {
            switch part {
            case .text(let bytes): topic += String(decoding: bytes, as: UTF8.self)
            case .id: topic += id
            case .variable(let name, let optional):
                if let v = program.variable(name, id: id), !v.isEmpty {
                    topic += v
                    if optional { topic += "/" }
                }
            }
        }
        return topic
    }
}
