/// A route's clean topic, built for each reading from the meter's id.
///
/// The engine keeps no topic string per meter (two heap strings and their
/// array were about 190 bytes a meter, 1.9 MB at 10,000): the template's
/// parts that are the same for every meter (the site's root, the pack's
/// model and manufacturer, the literal text) are joined once here, and a
/// reading writes them and its meter's variables (`{id}`, `{context/}`, an
/// id form) into the bytes of the last reading's topic.
///
/// A class: a reading calls its plan through one reference, not a copy of
/// its three arrays (three retains and releases per reading).
final class TopicPlan: Sendable {
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
    /// For `idOnly`: the text parts back to back, cut where an id goes
    /// (`ends[k]` ends piece k; pieces may be empty): a reading copies
    /// piece, id, piece… from one array, no enum walked.
    private let joined: [UInt8]
    private let ends: [Int]

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
        var joined: [UInt8] = []
        var ends: [Int] = []
        for part in parts {
            switch part {
            case .text(let bytes): joined += bytes
            case .id: ends.append(joined.count)
            case .variable: continue
            }
        }
        ends.append(joined.count)
        self.joined = joined
        self.ends = ends
    }

    /// Meter `id`'s topic, written over `out`, whose storage is reused when
    /// it has room and no other owner (`ProcessOutput`'s spare topic): the
    /// topic of one meter after another is the same size, so a reading
    /// allocates nothing and only copies its pieces in.
    /// `program` is read only for a topic with variables other than the id
    /// (a copy of the whole program per reading was a `memcpy` of its size).
    func render(id: String, program: @autoclosure () -> Program, into out: inout [UInt8]) {
        guard idOnly else {
            let topic = renderLookingUp(id: id, program: program())
            out.resize(to: topic.utf8.count)
            out.withUnsafeMutableBufferPointer { _ = $0.initialize(from: topic.utf8) }
            return
        }
        // A native string's bytes without the mutable copy `withUTF8` needs (the fallback).
        if id.utf8.withContiguousStorageIfAvailable({ write(id: $0, into: &out) }) == nil {
            var id = id
            id.withUTF8 { write(id: $0, into: &out) }
        }
    }

    /// The `idOnly` topic: piece, id, piece, … id, piece.
    private func write(id: UnsafeBufferPointer<UInt8>, into out: inout [UInt8]) {
        let size = textCount &+ idCount &* id.count
        out.resize(to: size)
        guard size > 0 else { return }
        out.withUnsafeMutableBufferPointer { buffer in
            joined.withUnsafeBufferPointer { text in
                ends.withUnsafeBufferPointer { ends in
                    var to = buffer.baseAddress!
                    var from = 0
                    for k in 0..<ends.count {
                        // (An empty piece or id may have no address: nothing to copy.)
                        if k > 0 && !id.isEmpty {
                            to.initialize(from: id.baseAddress!, count: id.count)
                            to += id.count
                        }
                        let count = ends[k] &- from
                        if count > 0 {
                            to.initialize(from: text.baseAddress! + from, count: count)
                            to += count
                        }
                        from = ends[k]
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
