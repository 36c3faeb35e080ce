import JSON
import JanssonBaseline
import Testing

func parseJSON(_ text: String, allowAnyTopLevel: Bool = false) -> Result<JSONValue, JSONError> {
    Result { () throws(JSONError) in try JSONValue.parse(text, allowAnyTopLevel: allowAnyTopLevel) }
}

func rejection(_ bytes: [UInt8], allowAnyTopLevel: Bool = false) -> JSONError? {
    do {
        _ = try JSONValue.parse(bytes, allowAnyTopLevel: allowAnyTopLevel)
        return nil
    } catch {
        return error
    }
}

func rejection(_ text: String, allowAnyTopLevel: Bool = false) -> JSONError? {
    rejection(Array(text.utf8), allowAnyTopLevel: allowAnyTopLevel)
}

@Suite struct JSONValueTests {
    @Test func compactDocumentRoundTripsByteForByte() throws {
        let text = #"{"b":1,"a":[true,false,null,-3,2.5,"x",9223372036854775807],"c":{"z":{},"y":[]},"d":-0.0}"#
        let value = try JSONValue.parse(text)
        #expect(value.serializedString == text)
        #expect(try JSONValue.parse(value.serialized()) == value)
    }

    @Test func spacedInputSerializesCompact() throws {
        let value = try JSONValue.parse("{ \"a\" : [ 1 , 2 ] ,\n \"b\" : { } }")
        #expect(value.serializedString == #"{"a":[1,2],"b":{}}"#)
    }

    @Test func memberOrderIsPreserved() throws {
        let value = try JSONValue.parse(#"{"z":1,"a":2,"m":3,"b":4}"#)
        #expect(value.objectValue?.keys == ["z", "a", "m", "b"])
        let built: JSONValue = ["z": 1, "a": "x", "m": [1, 2]]
        #expect(built.serializedString == #"{"z":1,"a":"x","m":[1,2]}"#)
    }

    @Test func integersAndRealsStayApart() throws {
        #expect(try JSONValue.parse("[2, 2.0, 2e0]") == [.integer(2), .real(2), .real(2)])
        #expect(JSONValue.array([.integer(2), .real(2)]).serializedString == "[2,2.0]")
    }

    @Test(arguments: [
        (0.1, "0.1"), (230.1, "230.1"), (100.0, "100.0"), (1.5, "1.5"), (-0.25, "-0.25"),
        (0.0, "0.0"), (1.0 / 3.0, "0.3333333333333333"), (123456.789, "123456.789"),
        (1e-7, "1e-7"), (1e300, "1e300"), (0.001, "0.001"),
    ])
    func realsPrintShortest(value: Double, text: String) {
        #expect(JSONValue.real(value).serializedString == text)
    }

    @Test func realsReadBackExactly() throws {
        var reals: [Double] = [.pi, .ulpOfOne, .leastNormalMagnitude, .leastNonzeroMagnitude,
                               .greatestFiniteMagnitude, 0.1 + 0.2, 9007199254740991, 2.5e-308]
        var state: UInt64 = 0x9E37_79B9_7F4A_7C15
        for _ in 0..<2000 {  // deterministic bit patterns across the whole range
            state = state &* 6364136223846793005 &+ 1442695040888963407
            let bits = Double(bitPattern: state)
            if bits.isFinite { reals.append(bits) }
        }
        for real in reals {
            let text = JSONValue.array([.real(real)]).serializedString
            #expect(try JSONValue.parse(text) == .array([.real(real)]), "\(real) printed as \(text)")
        }
        // The precision is per document: one long real lengthens the others, and they still read back.
        let mixed = JSONValue.array([.real(0.1), .real(1.0 / 3.0)])
        #expect(try JSONValue.parse(mixed.serializedString) == mixed)
    }

    @Test func nonFiniteRealsPrintAsNull() {
        #expect(JSONValue.array([.real(.nan), .real(.infinity)]).serializedString == "[null,null]")
    }

    @Test func unicodeAndEscapes() throws {
        let value = try JSONValue.parse(#"["\u00e9\ud83d\ude00", "q\"b\\s\/n\nt\tc\u0001", "Zähler ⚡"]"#)
        #expect(value == ["é😀", "q\"b\\s/n\nt\tc\u{01}", "Zähler ⚡"])
        #expect(value.serializedString == #"["é😀","q\"b\\s/n\nt\tc\u0001","Zähler ⚡"]"#)
        let key: JSONValue = ["schlüssel": "wert"]
        #expect(key.serializedString == #"{"schlüssel":"wert"}"#)
    }

    @Test func duplicateKeysLastWinsInFirstPlace() throws {
        let value = try JSONValue.parse(#"{"a":1,"b":2,"a":3}"#)
        #expect(value.serializedString == #"{"a":3,"b":2}"#)
        let literal: JSONObject = [("a", 1), ("b", 2), ("a", 3)]
        #expect(literal.keys == ["a", "b"])
        #expect(literal["a"] == 3)
    }

    @Test func objectSubscriptReplacesAppendsAndRemoves() {
        var object: JSONObject = ["a": 1, "b": 2]
        object["a"] = "x"
        object["c"] = .null
        object["b"] = nil
        #expect(Array(object.map(\.key)) == ["a", "c"])
        #expect(JSONValue.object(object).serializedString == #"{"a":"x","c":null}"#)
        #expect(object != ["c": .null, "a": "x"])  // order matters
    }

    @Test func accessors() throws {
        let value = try JSONValue.parse(#"{"s":"t","i":7,"r":1.5,"b":true,"n":null,"a":[1],"o":{"k":"v"}}"#)
        #expect(value["s"]?.stringValue == "t")
        #expect(value["i"]?.intValue == 7)
        #expect(value["i"]?.doubleValue == 7)
        #expect(value["r"]?.doubleValue == 1.5)
        #expect(value["r"]?.intValue == nil)
        #expect(value["b"]?.boolValue == true)
        #expect(value["n"]?.isNull == true)
        #expect(value["a"]?.arrayValue == [1])
        #expect(value["o"]?["k"]?.stringValue == "v")
        #expect(value["missing"] == nil)
        #expect(value["s"]?["k"] == nil)
    }

    @Test(arguments: [
        (#"{"a":1"#, "'}' expected near end of file"),
        (#"{"a":1} x"#, "end of file expected near 'x'"),
        ("42", "'[' or '{' expected near '42'"),
        (#""text""#, "'[' or '{' expected near '\"text\"'"),
        ("", "'[' or '{' expected near end of file"),
        (#"["a\u0000b"]"#, #"\u0000 is not allowed without JSON_ALLOW_NUL near '"a\u0000b"'"#),
        ("[99999999999999999999]", "too big integer near '99999999999999999999'"),
    ])
    func rejections(text: String, message: String) {
        #expect(rejection(text)?.message == message)
    }

    @Test func invalidUTF8IsRejected() {
        let error = rejection(Array(#"["a"#.utf8) + [0xC3, 0x28] + Array(#""]"#.utf8))
        #expect(error?.message == "unable to decode byte 0xc3 near '\"a'")
    }

    @Test func anyTopLevelWhenAllowed() throws {
        #expect(try JSONValue.parse("42", allowAnyTopLevel: true) == 42)
        #expect(try JSONValue.parse(#""s""#, allowAnyTopLevel: true) == "s")
        #expect(try JSONValue.parse("null", allowAnyTopLevel: true) == .null)
        #expect(JSONValue.string("s").serializedString == #""s""#)
    }

    @Test func errorLineAndColumn() throws {
        let error = try #require(rejection("{\n  \"a\": 1,\n  \"bé\": ]\n}"))
        #expect(error.description == "3:9: unexpected token near ']'")
        // Column in characters ('é' is one); position in bytes read, through the ']'.
        #expect(error.position == 22)
    }

    @Test func parsesAnyByteCollection() throws {
        let bytes = Array(#"xx{"a":[1]}"#.utf8)
        #expect(try JSONValue.parse(bytes[2...]) == ["a": [1]])
        #expect(try JSONValue.parse(bytes.lazy.dropFirst(2)) == ["a": [1]])  // not contiguous
    }
}

@Suite struct JanssonProjectionTests {
    func project(_ projection: JanssonProjection, _ text: String) -> String? {
        Array(text.utf8).withUnsafeBytes { projection.apply($0) }.map { String(decoding: $0, as: UTF8.self) }
    }

    @Test func picksFieldsAndFillsMissingWithNull() {
        let projection = JanssonProjection(fields: [("id", "id"), ("x", "x"), ("z", "z")])
        #expect(project(projection, #"{"id":"A","x":1.5,"y":2}"#) == #"{"id":"A","x":1.5,"z":null}"#)
    }

    @Test func renamesAndCopiesNestedValues() {
        let projection = JanssonProjection(fields: [("power", "p"), ("meta", "m")])
        #expect(project(projection, #"{"m":{"a":[1,{"b":null}]},"p":-2}"#) == #"{"power":-2,"meta":{"a":[1,{"b":null}]}}"#)
    }

    @Test func rejectsWhatIsNotAnObject() {
        let projection = JanssonProjection(fields: [("a", "a")])
        #expect(project(projection, "[1]") == nil)
        #expect(project(projection, #"{"a":"#) == nil)
        #expect(project(projection, "") == nil)
    }

    @Test func largeOutputGoesThroughTheHeap() {
        let long = String(repeating: "x", count: 10_000)
        let projection = JanssonProjection(fields: [("s", "s")])
        #expect(project(projection, #"{"s":"\#(long)"}"#) == #"{"s":"\#(long)"}"#)
    }
}
