import Testing
import YAML

/// Parses text that must be clean and returns its root.
func parseClean(_ text: String, sourceLocation: SourceLocation = #_sourceLocation) throws -> YAMLNode {
    let result = YAML.parse(Array(text.utf8))
    #expect(result.problems.isEmpty, "\(result.problems)", sourceLocation: sourceLocation)
    return try #require(result.root, sourceLocation: sourceLocation)
}

func entries(_ node: YAMLNode?) -> [YAMLEntry] {
    if case .mapping(let entries, _) = node { entries } else { [] }
}

func items(_ node: YAMLNode?) -> [YAMLNode] {
    if case .sequence(let items, _) = node { items } else { [] }
}

func scalar(_ node: YAMLNode?) -> YAMLScalar? {
    if case .scalar(let scalar) = node { scalar } else { nil }
}

func value(_ node: YAMLNode?, _ key: String) -> YAMLNode? {
    entries(node).first { $0.key.value == key }?.value
}

func at(_ line: Int, _ column: Int) -> Mark { Mark(line: line, column: column) }

@Suite struct YAMLTreeTests {
    @Test func nestedMarks() throws {
        let root = try parseClean("""
            server:
              host: "broker.local"
              ports:
                - 1883
                -   8883
            name: meter

            """)
        #expect(root.mark == at(1, 1))
        #expect(entries(root).map(\.key.value) == ["server", "name"])
        #expect(entries(root).map(\.key.mark) == [at(1, 1), at(6, 1)])

        let server = value(root, "server")
        #expect(server?.mark == at(2, 3))
        #expect(entries(server).map(\.key.mark) == [at(2, 3), at(3, 3)])
        #expect(scalar(value(server, "host"))?.mark == at(2, 9))
        #expect(scalar(value(server, "host"))?.value == "broker.local")

        let ports = value(server, "ports")
        #expect(ports?.mark == at(4, 5))
        #expect(items(ports).map(\.mark) == [at(4, 7), at(5, 9)])
        #expect(items(ports).compactMap { scalar($0)?.value } == ["1883", "8883"])
        #expect(scalar(value(root, "name"))?.mark == at(6, 7))
    }

    @Test func flowCollectionMarks() throws {
        let root = try parseClean("top: {a: [1, 'two'], b: {}}\n")
        let top = value(root, "top")
        #expect(top?.mark == at(1, 6))
        #expect(value(top, "a")?.mark == at(1, 10))
        #expect(items(value(top, "a")).map(\.mark) == [at(1, 11), at(1, 14)])
        #expect(value(top, "b")?.mark == at(1, 25))
        #expect(entries(value(top, "b")).isEmpty)
    }

    @Test func sequenceOfMappings() throws {
        let root = try parseClean("""
            - topic: a/b
              qos: 1
            - topic: c

            """)
        #expect(root.mark == at(1, 1))
        #expect(items(root).map(\.mark) == [at(1, 3), at(3, 3)])
        #expect(entries(items(root).first).map(\.key.mark) == [at(1, 3), at(2, 3)])
    }

    @Test func scalarStyles() throws {
        let root = try parseClean("""
            a: plain text
            b: 'single ''q'''
            c: "double\\tq \\u00e9\\n"
            d: |
              line1
              line2
            e: >
              folded
              text
            f:
            g: ~

            """)
        func check(_ key: String, _ text: String, _ style: ScalarStyle,
                   sourceLocation: SourceLocation = #_sourceLocation) {
            let found = scalar(value(root, key))
            #expect(found?.value == text, sourceLocation: sourceLocation)
            #expect(found?.style == style, sourceLocation: sourceLocation)
        }
        check("a", "plain text", .plain)
        check("b", "single 'q'", .singleQuoted)
        check("c", "double\tq é\n", .doubleQuoted)
        check("d", "line1\nline2\n", .literal)
        check("e", "folded text\n", .folded)
        check("f", "", .plain)
        check("g", "~", .plain)
        #expect(scalar(value(root, "d"))?.mark == at(4, 4))
    }

    @Test func mappingOrderIsPreserved() throws {
        let root = try parseClean("z: 1\na: 2\nm: 3\nb: 4\n")
        #expect(entries(root).map(\.key.value) == ["z", "a", "m", "b"])
    }

    @Test func utf8TextAndColumnsInCharacters() throws {
        let root = try parseClean("zähler: \"Zähler ⚡ 値\"\näöü: 値\n")
        #expect(scalar(value(root, "zähler"))?.value == "Zähler ⚡ 値")
        #expect(scalar(value(root, "zähler"))?.mark == at(1, 9))
        // Columns count characters, not bytes.
        #expect(scalar(value(root, "äöü"))?.mark == at(2, 6))
        #expect(scalar(value(root, "äöü"))?.value == "値")
    }

    @Test(arguments: ["", "# only a comment\n", "---\n", "--- \n...\n", "\n\n"])
    func emptyDocumentHasNoRootAndNoProblems(text: String) {
        let result = YAML.parse(Array(text.utf8))
        #expect(result.root == nil)
        #expect(result.problems.isEmpty)
    }

    @Test func explicitDocumentStartIsOneDocument() throws {
        let root = try parseClean("---\na: 1\n...\n")
        #expect(entries(root).map(\.key.value) == ["a"])
    }

    @Test func deepNestingDoesNotOverflow() throws {
        let depth = 5_000
        let text = String(repeating: "[", count: depth) + String(repeating: "]", count: depth)
        var node: YAMLNode? = try parseClean(text)
        var levels = 0
        while case .sequence(let children, _) = node {
            levels += 1
            node = children.first
        }
        #expect(levels == depth)
    }
}
