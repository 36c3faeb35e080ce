internal import CJansson

extension JSONError {
    /// The one place a jansson error becomes a `JSONError`. jansson ends `text` with a
    /// NUL before its last byte, which holds the error code.
    init(_ error: json_error_t) {
        let message = withUnsafeBytes(of: error.text) { text in
            String(decoding: text.prefix { $0 != 0 }, as: UTF8.self)
        }
        self.init(message: message, line: Int(error.line), column: Int(error.column),
                  position: Int(error.position))
    }
}
