#if canImport(Glibc)
import Glibc
#endif
import JSON
import RuleEngine

/// Records the central broker refused for good (an MQTT 5 reason code that
/// sending again cannot change: not authorized, topic name invalid, payload
/// format invalid, packet too large), kept in the proxy's state directory
/// until an operator replays or discards them (`kpm33b-proxy dead-letters`).
///
/// `dead-letters`: one JSON object per line, `{"time", "sequence", "code",
/// "reason", "topic", "retain", "kind", "payload"}` (the payload as the
/// string it is: the proxy's own JSON). The proxy appends; the command
/// rewrites the file through a temporary file renamed over it. Both hold
/// `dead-letters.lock` (flock) meanwhile, so an append never goes to a file
/// the command is replacing.
///
/// Bounded: past `maxBytes` the proxy does not append; it keeps the record in
/// its journal and tries again later (see `ProxyCore`), so nothing is lost
/// and the journal's back-pressure takes over.
struct DeadLetters {
    struct Letter: Equatable {
        var time: String
        var sequence: UInt64
        var code: Int
        var reason: String
        var topic: String
        var retain: Bool
        var kind: UInt8
        var payload: [UInt8]
    }

    static let maxBytes = 64 << 20

    let path: String
    private var lockPath: String { path + ".lock" }
    private var temporaryPath: String { path + ".tmp" }

    init(directory: String) {
        path = (directory.hasSuffix("/") ? directory : directory + "/") + "dead-letters"
    }

    /// The file's size; 0 when there is none.
    var bytes: Int {
        var info = stat()
        return stat(path, &info) == 0 ? Int(info.st_size) : 0
    }

    /// Appends one letter; false when the file is at its bound.
    func append(_ letter: Letter) throws(ServiceError) -> Bool {
        try locked { () throws(ServiceError) -> Bool in
            let line = Self.encode(letter)
            guard bytes + line.count <= Self.maxBytes else { return false }
            try write(line, to: path, flags: O_WRONLY | O_CREAT | O_APPEND)
            return true
        }
    }

    /// Every letter in the file, in order; lines that do not parse are skipped and counted.
    func load() throws(ServiceError) -> (letters: [Letter], unreadable: Int) {
        try locked { () throws(ServiceError) in try read() }
    }

    /// Runs `change` on the letters under the lock and writes back what it returns
    /// (the file is removed when nothing is left).
    func update(_ change: ([Letter]) throws(ServiceError) -> [Letter]) throws(ServiceError) {
        try locked { () throws(ServiceError) in
            let kept = try change(try read().letters)
            if kept.isEmpty {
                if unlink(path) != 0 && errno != ENOENT { throw ServiceError("cannot remove \(path): \(String(cString: strerror(errno)))") }
                return
            }
            try write(kept.flatMap(Self.encode), to: temporaryPath, flags: O_WRONLY | O_CREAT | O_TRUNC)
            guard rename(temporaryPath, path) == 0 else {
                throw ServiceError("cannot replace \(path): \(String(cString: strerror(errno)))")
            }
        }
    }

    // MARK: Internals

    private func read() throws(ServiceError) -> (letters: [Letter], unreadable: Int) {
        guard let bytes = FileSystem.read(path) else { return ([], 0) }
        var letters: [Letter] = []
        var unreadable = 0
        for line in bytes.split(separator: 0x0A) {
            if let letter = Self.decode(Array(line)) { letters.append(letter) } else { unreadable += 1 }
        }
        return (letters, unreadable)
    }

    private func locked<T>(_ body: () throws(ServiceError) -> T) throws(ServiceError) -> T {
        let fd = open(lockPath, O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw ServiceError("cannot open \(lockPath): \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        while flock(fd, LOCK_EX) != 0 {
            if errno != EINTR { throw ServiceError("cannot lock \(lockPath): \(String(cString: strerror(errno)))") }
        }
        return try body()
    }

    private func write(_ bytes: [UInt8], to file: String, flags: Int32) throws(ServiceError) {
        let fd = open(file, flags | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw ServiceError("cannot write \(file): \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        var written = 0
        while written < bytes.count {
            let n = bytes.withUnsafeBytes { Glibc.write(fd, $0.baseAddress! + written, $0.count - written) }
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { throw ServiceError("cannot write \(file): \(String(cString: strerror(errno)))") }
            written += n
        }
        // A refused record leaves the journal once it is here: make it survive a power cut too.
        guard fsync(fd) == 0 else { throw ServiceError("cannot sync \(file): \(String(cString: strerror(errno)))") }
    }

    static func encode(_ letter: Letter) -> [UInt8] {
        let document: JSONValue = [
            "time": .string(letter.time), "sequence": .integer(Int64(letter.sequence)),
            "code": .integer(Int64(letter.code)), "reason": .string(letter.reason),
            "topic": .string(letter.topic), "retain": .bool(letter.retain), "kind": .integer(Int64(letter.kind)),
            "payload": .string(String(decoding: letter.payload, as: UTF8.self)),
        ]
        return document.serialized() + [0x0A]
    }

    static func decode(_ line: [UInt8]) -> Letter? {
        guard let object = try? JSONValue.parse(line), let topic = object["topic"]?.stringValue,
              let payload = object["payload"]?.stringValue else { return nil }
        return Letter(time: object["time"]?.stringValue ?? "", sequence: UInt64(object["sequence"]?.intValue ?? 0),
                      code: Int(object["code"]?.intValue ?? 0), reason: object["reason"]?.stringValue ?? "",
                      topic: topic, retain: object["retain"]?.boolValue ?? false,
                      kind: UInt8(truncatingIfNeeded: object["kind"]?.intValue ?? 0), payload: Array(payload.utf8))
    }
}
