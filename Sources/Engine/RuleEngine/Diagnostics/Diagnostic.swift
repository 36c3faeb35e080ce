import YAML

/// One problem found while loading or checking a rule pack or site config.
///
/// Rendered as `path:line:column: error[CODE]: message` (or `warning[CODE]`),
/// then the source line with a caret under the column, then `hint: …` when
/// there is one. Codes are stable; `Diagnostic.Code` documents each in one
/// sentence. Only errors fail a load or a lint.
public struct Diagnostic: Sendable, Equatable, Error {
    public enum Severity: String, Sendable { case error, warning }

    /// Stable codes. Y: the YAML layer; R: rule packs; C: site configs; F: files.
    /// Each code's one sentence is `meaning` (Diagnostic+meaning.swift), the
    /// table with an example each is docs/diagnostics.md.
    public enum Code: String, Sendable, CaseIterable {
        case yamlSyntax = "Y001"
        case duplicateKey = "Y002"
        case yamlUnsupported = "Y003"
        case unknownKey = "R001"
        case missingKey = "R002"
        case wrongType = "R003"
        case unknownTag = "R004"
        case unknownVariable = "R005"
        case overlappingRoutes = "R006"
        case unsafeTopicValue = "R007"
        case invalidFilter = "R008"
        case invalidPattern = "R009"
        case unknownReference = "R010"
        case duplicateName = "R011"
        case invalidValue = "R012"
        case unitMismatch = "R013"
        case noMatchingTopic = "R014"
        case homeAssistant = "R015"
        case packClaim = "R016"
        case secretInConfig = "C001"
        case invalidName = "C002"
        case settingNotAllowed = "C003"
        case deprecatedKey = "C004"
        case unknownConfigKey = "C005"
        case missingConfigKey = "C006"
        case wrongConfigType = "C007"
        case unknownConfigReference = "C008"
        case invalidConfigValue = "C009"
        case meterPack = "C010"
        case unreadableFile = "F001"
    }

    /// The site-config form of a code: the rule-pack codes a site config can
    /// also raise (the shared readers' unknown key, wrong type, …) become their
    /// C-codes; every other code is its own.
    public static func inSiteConfig(_ code: Code) -> Code {
        switch code {
        case .unknownKey: .unknownConfigKey
        case .missingKey: .missingConfigKey
        case .wrongType: .wrongConfigType
        case .unknownReference: .unknownConfigReference
        case .invalidValue: .invalidConfigValue
        default: code
        }
    }

    public var severity: Severity
    public var code: Code
    public var message: String
    public var hint: String?
    public var file: String
    public var mark: Mark

    public init(_ code: Code, _ message: String, hint: String? = nil, file: String, at mark: Mark, severity: Severity = .error) {
        self.severity = severity
        self.code = code
        self.message = message
        self.hint = hint
        self.file = file
        self.mark = mark
    }

    /// The first line alone: `path:line:column: error[CODE]: message`.
    public var headline: String {
        "\(file):\(mark.line):\(mark.column): \(severity.rawValue)[\(code.rawValue)]: \(message)"
    }

    /// The full rendering with the source line and caret, given the file's text.
    public func rendered(source: SourceText?) -> String {
        var out = headline
        if let line = source?.line(mark.line) {
            let number = String(mark.line)
            let pad = String(repeating: " ", count: number.count)
            out += "\n \(number) | \(line)"
            let caretColumn = max(0, min(mark.column - 1, line.count))
            out += "\n \(pad) | " + String(repeating: " ", count: caretColumn) + "^"
        }
        if let hint { out += "\nhint: \(hint)" }
        return out
    }
}

/// The text of a loaded file, kept for rendering diagnostics.
public struct SourceText: Sendable {
    public let path: String
    public let bytes: [UInt8]
    private let lineStarts: [Int]

    public init(path: String, bytes: [UInt8]) {
        self.path = path
        self.bytes = bytes
        var starts = [0]
        for (i, b) in bytes.enumerated() where b == UInt8(ascii: "\n") { starts.append(i + 1) }
        self.lineStarts = starts
    }

    /// Line `n` (1-based) without its newline, tabs shown as one space so the caret lines up.
    public func line(_ n: Int) -> String? {
        guard n >= 1 && n <= lineStarts.count else { return nil }
        let start = lineStarts[n - 1]
        var end = n < lineStarts.count ? lineStarts[n] - 1 : bytes.count
        if end > start && bytes[end - 1] == UInt8(ascii: "\r") { end -= 1 }
        guard start <= end else { return nil }
        return String(decoding: bytes[start..<end], as: UTF8.self).replacingTabs()
    }
}

extension String {
    fileprivate func replacingTabs() -> String {
        String(map { $0 == "\t" ? " " : $0 })
    }
}

/// All diagnostics of one load, with the sources to render them.
public struct DiagnosticReport: Error, Sendable, CustomStringConvertible {
    public var diagnostics: [Diagnostic]
    public var sources: [String: SourceText]

    public init(diagnostics: [Diagnostic] = [], sources: [String: SourceText] = [:]) {
        self.diagnostics = diagnostics
        self.sources = sources
    }

    public var hasErrors: Bool { diagnostics.contains { $0.severity == .error } }

    public mutating func merge(_ other: DiagnosticReport) {
        diagnostics += other.diagnostics
        sources.merge(other.sources) { a, _ in a }
    }

    /// The diagnostics sorted by file and position (found order among equals).
    public var sorted: [Diagnostic] {
        diagnostics.enumerated().sorted { a, b in
            let (x, y) = (a.element, b.element)
            if x.file != y.file { return x.file < y.file }
            if x.mark.line != y.mark.line { return x.mark.line < y.mark.line }
            if x.mark.column != y.mark.column { return x.mark.column < y.mark.column }
            return a.offset < b.offset
        }.map(\.element)
    }

    /// Every diagnostic rendered, sorted by file and position, then a count line.
    public var description: String {
        var lines = sorted.map { $0.rendered(source: sources[$0.file]) }
        let errors = diagnostics.filter { $0.severity == .error }.count
        let warnings = diagnostics.count - errors
        let counted = "\(errors) error\(errors == 1 ? "" : "s")"
            + (warnings == 0 ? "" : ", \(warnings) warning\(warnings == 1 ? "" : "s")")
        lines.append("\(counted) found")
        return lines.joined(separator: "\n")
    }
}
