internal import CYAML

/// Owns one libyaml parser and the copy of the input it reads; every libyaml call of the
/// target is in this file. One parse on one thread: not Sendable.
final class EventParser {
    /// libyaml keeps a pointer into the input, so the bytes live as long as the parser.
    private let input: UnsafeMutableBufferPointer<UInt8>
    /// Allocated here so its address is stable; libyaml points into itself.
    private let parser: UnsafeMutablePointer<yaml_parser_t>

    init(_ bytes: [UInt8]) {
        input = .allocate(capacity: bytes.count)
        _ = input.initialize(from: bytes)
        parser = .allocate(capacity: 1)
        // yaml_parser_initialize fails only when malloc does.
        guard yaml_parser_initialize(parser) == 1 else { fatalError("libyaml: out of memory") }
        yaml_parser_set_input_string(parser, input.baseAddress, input.count)
    }

    deinit {
        yaml_parser_delete(parser)  // frees what the parser allocated, not the struct
        parser.deallocate()
        input.deallocate()
    }

    /// The next event; after `.streamEnd` there is nothing more to ask for.
    func next() throws(YAMLProblem) -> Event {
        var event = yaml_event_t()
        guard yaml_parser_parse(parser, &event) == 1 else { throw syntaxProblem() }
        // The event owns its strings until yaml_event_delete; `Event` holds copies.
        defer { yaml_event_delete(&event) }
        let mark = Mark(event.start_mark)
        switch event.type {
        case YAML_STREAM_START_EVENT:
            return .streamStart
        case YAML_DOCUMENT_START_EVENT:
            return .documentStart(mark)
        case YAML_DOCUMENT_END_EVENT:
            return .documentEnd
        case YAML_ALIAS_EVENT:
            return .alias(anchor: string(event.data.alias.anchor) ?? "", mark)
        case YAML_SCALAR_EVENT:
            let data = event.data.scalar
            let value = String(decoding: UnsafeBufferPointer(start: data.value, count: data.length), as: UTF8.self)
            let scalar = YAMLScalar(value: value, style: ScalarStyle(data.style), mark: mark)
            return .scalar(scalar, NodeProperties(anchor: string(data.anchor), tag: string(data.tag)))
        case YAML_SEQUENCE_START_EVENT:
            let data = event.data.sequence_start
            return .sequenceStart(mark, NodeProperties(anchor: string(data.anchor), tag: string(data.tag)))
        case YAML_MAPPING_START_EVENT:
            let data = event.data.mapping_start
            return .mappingStart(mark, NodeProperties(anchor: string(data.anchor), tag: string(data.tag)))
        case YAML_SEQUENCE_END_EVENT, YAML_MAPPING_END_EVENT:
            return .collectionEnd
        default:
            // YAML_STREAM_END_EVENT, and YAML_NO_EVENT which libyaml returns after it.
            return .streamEnd
        }
    }

    /// Maps the parser's error state into the one `.syntax` problem of a failed parse.
    private func syntaxProblem() -> YAMLProblem {
        let state = parser.pointee
        let problem = state.problem.map { String(cString: $0) } ?? "unknown error"
        switch state.error {
        case YAML_MEMORY_ERROR:
            return YAMLProblem(kind: .syntax, message: "libyaml ran out of memory", mark: Mark(line: 1, column: 1))
        case YAML_READER_ERROR:
            // The reader (encoding checks) reports a byte offset, not a mark.
            var message = problem
            if state.problem_value != -1 {
                message += " (#\(String(state.problem_value, radix: 16, uppercase: true)))"
            }
            return YAMLProblem(kind: .syntax, message: message, mark: mark(atOffset: state.problem_offset))
        default:
            var message = problem
            if let context = state.context {
                message += " (\(String(cString: context)) at \(Mark(state.context_mark)))"
            }
            return YAMLProblem(kind: .syntax, message: message, mark: Mark(state.problem_mark))
        }
    }

    /// The mark of a byte offset, counted the way libyaml counts: `\n`, `\r\n` and `\r`
    /// end a line, a column is one UTF-8 character.
    private func mark(atOffset offset: Int) -> Mark {
        var line = 1
        var column = 1
        var previous: UInt8 = 0
        for byte in input.prefix(offset) {
            if byte == UInt8(ascii: "\n") && previous == UInt8(ascii: "\r") {
                // second half of \r\n: the line already ended
            } else if byte == UInt8(ascii: "\n") || byte == UInt8(ascii: "\r") {
                line += 1
                column = 1
            } else if byte & 0xC0 != 0x80 {
                column += 1
            }
            previous = byte
        }
        return Mark(line: line, column: column)
    }

    private func string(_ pointer: UnsafeMutablePointer<yaml_char_t>?) -> String? {
        pointer.map { String(cString: $0) }
    }
}

extension Mark {
    /// libyaml counts from 0.
    init(_ mark: yaml_mark_t) {
        self.init(line: Int(mark.line) + 1, column: Int(mark.column) + 1)
    }
}

extension ScalarStyle {
    init(_ style: yaml_scalar_style_t) {
        switch style {
        case YAML_SINGLE_QUOTED_SCALAR_STYLE: self = .singleQuoted
        case YAML_DOUBLE_QUOTED_SCALAR_STYLE: self = .doubleQuoted
        case YAML_LITERAL_SCALAR_STYLE: self = .literal
        case YAML_FOLDED_SCALAR_STYLE: self = .folded
        default: self = .plain  // YAML_PLAIN_SCALAR_STYLE; ANY is never parsed
        }
    }
}
