/// The members of a JSON object in order. Each key appears once: setting a key that is
/// already there replaces its value in place, as jansson does, so on parse the last
/// duplicate wins and keeps the first one's position.
///
/// Equality compares members in order: two objects are equal when they serialize to the
/// same bytes. Lookups are linear, which suits the small objects of this project.
public struct JSONObject: Sendable, Equatable, Sequence {
    public typealias Element = (key: String, value: JSONValue)

    private var members: [Element]

    public init() {
        members = []
    }

    /// Members in order; a repeated key keeps its first place and its last value.
    public init(_ pairs: some Sequence<(String, JSONValue)>) {
        members = []
        for (key, value) in pairs { self[key] = value }
    }

    /// Members whose keys the caller knows to be distinct (the sorted keys of
    /// a dictionary): linear, where adding them one by one is quadratic (each
    /// set looks for the key). A repeated key here makes a document with it twice.
    public init(distinctKeys pairs: [(String, JSONValue)]) {
        members = pairs.map { (key: $0.0, value: $0.1) }
    }

    /// Members already known to have distinct keys (a jansson object).
    init(uniqueMembers: [Element]) {
        members = uniqueMembers
    }

    /// The value of `key`; setting nil removes the member, setting a value replaces it in
    /// place or appends it.
    public subscript(key: String) -> JSONValue? {
        get { members.first { $0.key == key }?.value }
        set {
            let index = members.firstIndex { $0.key == key }
            switch (index, newValue) {
            case (let index?, let value?): members[index].value = value
            case (let index?, nil): members.remove(at: index)
            case (nil, let value?): members.append((key, value))
            case (nil, nil): break
            }
        }
    }

    public var keys: [String] { members.map(\.key) }
    public var count: Int { members.count }
    public var isEmpty: Bool { members.isEmpty }

    public func makeIterator() -> IndexingIterator<[Element]> {
        members.makeIterator()
    }

    public static func == (lhs: JSONObject, rhs: JSONObject) -> Bool {
        lhs.members.elementsEqual(rhs.members) { $0.key == $1.key && $0.value == $1.value }
    }
}

extension JSONObject: ExpressibleByDictionaryLiteral, ExpressibleByArrayLiteral {
    public init(dictionaryLiteral elements: (String, JSONValue)...) {
        self.init(elements)
    }

    public init(arrayLiteral elements: (String, JSONValue)...) {
        self.init(elements)
    }
}
