import Testing
@testable import RuleEngine
@testable import RuleTesting

/// The `rulecheck test` diff, and its marker of the span that changed.
@Suite struct UnifiedDiffTests {
    @Test func aShortChangedLineGetsACaretLine() {
        let diff = UnifiedDiff.diff(["a", "x 31.057 y", "b"], ["a", "x 31.058 y", "b"], fromName: "want", toName: "got")
        #expect(diff == """
        --- want
        +++ got
        @@ -1,3 +1,3 @@
         a
        -x 31.057 y
        +x 31.058 y
        ?       ^
         b
        """)
    }

    @Test func aLongLineGetsAnExcerptWithTheColumn() {
        let prefix = String(repeating: "p", count: 300), suffix = String(repeating: "s", count: 300)
        let old = prefix + #""state_class":"measurement""# + suffix
        let new = prefix + #""state_class":"total""# + suffix
        #expect(UnifiedDiff.marker(old, new)
            == #"? column 316: …ppppp"state_class":"[measurement]"sssssssssssssssssss… → …ppppp"state_class":"[total]"sssssssssssssssssss…"#)
    }

    @Test func insertionsAloneAreNotMarked() {
        let diff = UnifiedDiff.diff(["a"], ["a", "b"], fromName: "want", toName: "got")
        #expect(diff == "--- want\n+++ got\n@@ -1,1 +1,2 @@\n a\n+b")
    }

    @Test func equalInputsHaveNoDiff() {
        #expect(UnifiedDiff.diff(["a"], ["a"], fromName: "x", toName: "y") == nil)
    }
}
