import Testing
import YAML

func problems(_ text: String) -> [YAMLProblem] {
    YAML.parse(Array(text.utf8)).problems
}

/// `kind line:column[ related line:column] message`, so a test states a problem in one line.
func render(_ problem: YAMLProblem) -> String {
    var text = "\(problem.kind) \(problem.mark)"
    if let related = problem.related { text += " related \(related)" }
    return text + " \(problem.message)"
}

@Suite struct YAMLProblemTests {
    @Test func duplicateKeysKeepTheFirstAndPointAtBoth() {
        let result = YAML.parse(Array("""
            a: 1
            b:
              x: first
              y: 2
              x: second
            a: 3

            """.utf8))
        #expect(result.problems.map(render) == [
            "duplicateKey 5:3 related 3:3 duplicate key 'x'",
            "duplicateKey 6:1 related 1:1 duplicate key 'a'",
        ])
        let root = result.root
        #expect(entries(root).map(\.key.value) == ["a", "b"])
        #expect(scalar(value(root, "a"))?.value == "1")
        #expect(entries(value(root, "b")).map(\.key.value) == ["x", "y"])
        #expect(scalar(value(value(root, "b"), "x"))?.value == "first")
    }

    @Test func quotedAndPlainKeysWithTheSameTextAreDuplicates() {
        #expect(problems("'1': a\n1: b\n").map(render) == ["duplicateKey 2:1 related 1:1 duplicate key '1'"])
    }

    @Test func badIndentationIsASyntaxErrorWithLibyamlsMark() {
        let result = YAML.parse(Array("""
            a:
              b: 1
             c: 2

            """.utf8))
        #expect(result.root == nil)
        #expect(result.problems.map(render) == [
            "syntax 3:2 did not find expected key (while parsing a block mapping at 1:1)",
        ])
    }

    @Test func unclosedQuoteIsASyntaxError() {
        let result = YAML.parse(Array("name: meter\nhost: \"broker\nport: 1\n".utf8))
        #expect(result.root == nil)
        #expect(result.problems.map(render) == [
            "syntax 4:1 found unexpected end of stream (while scanning a quoted scalar at 2:7)",
        ])
    }

    @Test func tabIndentationIsASyntaxError() {
        #expect(problems("a:\n\tb: 1\n").map(render) == [
            "syntax 2:1 found character that cannot start any token (while scanning for the next token at 2:1)",
        ])
    }

    @Test func invalidUTF8IsASyntaxErrorAtItsCharacter() {
        let result = YAML.parse(Array("a: ä\nb: ".utf8) + [0xFF, 0x0A])
        #expect(result.root == nil)
        #expect(result.problems.map(render) == ["syntax 2:4 invalid leading UTF-8 octet (#FF)"])
    }

    @Test func syntaxErrorDiscardsOtherProblems() {
        let result = YAML.parse(Array("a: 1\na: 2\nb: [\n".utf8))
        #expect(result.root == nil)
        #expect(result.problems.count == 1)
        #expect(result.problems.first?.kind == .syntax)
    }

    @Test func anchorsAndAliasesAreRejected() {
        let result = YAML.parse(Array("base: &b 1\nother: *b\nlist: [*b, 2]\n".utf8))
        #expect(result.problems.map(render) == [
            "unsupported 1:7 anchor '&b' is not supported; write the value out",
            "unsupported 2:8 alias '*b' is not supported; write the value out",
            "unsupported 3:8 alias '*b' is not supported; write the value out",
        ])
        // The tree keeps its shape around what was rejected.
        #expect(entries(result.root).map(\.key.value) == ["base", "other", "list"])
        #expect(items(value(result.root, "list")).count == 2)
    }

    @Test func aliasAsKeyDropsTheEntry() {
        let result = YAML.parse(Array("a: &k x\n*k : 1\nb: 2\n".utf8))
        #expect(result.problems.map(\.kind) == [.unsupported, .unsupported])
        #expect(entries(result.root).map(\.key.value) == ["a", "b"])
    }

    @Test func tagsAreRejected() {
        #expect(problems("a: !!str 1\nb: !custom [1]\nc: ! x\n").map(render) == [
            "unsupported 1:4 tag 'tag:yaml.org,2002:str' is not supported; remove it",
            "unsupported 2:4 tag '!custom' is not supported; remove it",
            "unsupported 3:4 tag '!' is not supported; remove it",
        ])
    }

    @Test func nonScalarKeysAreRejectedAndDropped() {
        let result = YAML.parse(Array("? [a, b]\n: 1\n? {k: v}\n: 2\nc: 3\n".utf8))
        #expect(result.problems.map(render) == [
            "unsupported 1:3 a mapping or sequence as a key is not supported; keys must be scalars",
            "unsupported 3:3 a mapping or sequence as a key is not supported; keys must be scalars",
        ])
        #expect(entries(result.root).map(\.key.value) == ["c"])
    }

    @Test func moreThanOneDocumentIsRejected() {
        let result = YAML.parse(Array("a: 1\n---\nb: 2\n".utf8))
        #expect(result.problems.map(render) == [
            "unsupported 2:1 more than one document in one file; remove the '---' separator",
        ])
        #expect(entries(result.root).map(\.key.value) == ["a"])
    }

    @Test func allProblemsAreCollected() {
        let result = YAML.parse(Array("a: &x 1\na: 2\nb: !t 3\n".utf8))
        #expect(result.problems.map(\.kind) == [.unsupported, .duplicateKey, .unsupported])
    }
}
