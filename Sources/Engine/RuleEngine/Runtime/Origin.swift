/// Who is running the program, for Home Assistant's `origin` block.
public struct Origin: Sendable {
    public var name: String
    public var version: String
    public var url: String?
    public init(name: String, version: String, url: String? = nil) {
        self.name = name
        self.version = version
        self.url = url
    }
}
