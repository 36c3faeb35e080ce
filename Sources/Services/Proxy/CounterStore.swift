#if canImport(Glibc)
import Glibc
#endif
import JSON
import RuleEngine

/// The guarded counters' last forwarded values (`Engine.counters`) in the
/// proxy's state directory, so that a restart checks the next reading against
/// what was forwarded before it: `counters.json`,
/// `{"version":1,"counters":[{"device","field","value","time"}]}`.
///
/// Written whole, to a temporary file renamed over the old one: a crash
/// leaves the old or the new file, never half of one. No fsync: a power cut
/// may bring back an older value, which only lets one more genuine reading
/// through the check, never a glitch that went up.
struct CounterStore {
    let path: String
    private var temporaryPath: String { path + ".tmp" }

    init(directory: String) {
        path = (directory.hasSuffix("/") ? directory : directory + "/") + "counters.json"
    }

    /// The saved counters; empty when there is no file. A file that does not
    /// parse is reported (the caller logs it) and treated as empty.
    func load() -> (counters: [CounterSnapshot], problem: String?) {
        guard let bytes = FileSystem.read(path) else { return ([], nil) }
        guard let document = try? JSONValue.parse(bytes), case .array(let items)? = document["counters"] else {
            return ([], "\(path) is not a counters file; starting without saved counters")
        }
        var counters: [CounterSnapshot] = []
        for item in items {
            guard let device = item["device"]?.stringValue, let field = item["field"]?.stringValue,
                  let value = item["value"]?.doubleValue, let time = item["time"]?.intValue else { continue }
            counters.append(CounterSnapshot(device: device, field: field, value: value, time: time))
        }
        return (counters, nil)
    }

    /// Replaces the file with `counters`; the error names what failed.
    func save(_ counters: [CounterSnapshot]) throws(ServiceError) {
        let document: JSONValue = [
            "version": 1,
            "counters": .array(counters.map { c in
                ["device": .string(c.device), "field": .string(c.field), "value": .real(c.value), "time": .integer(c.time)]
            }),
        ]
        let bytes = document.serialized() + [0x0A]
        let fd = open(temporaryPath, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw ServiceError("cannot write \(temporaryPath): \(String(cString: strerror(errno)))") }
        var written = 0
        while written < bytes.count {
            let n = bytes.withUnsafeBytes { write(fd, $0.baseAddress! + written, $0.count - written) }
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else {
                let why = String(cString: strerror(errno))
                close(fd)
                throw ServiceError("cannot write \(temporaryPath): \(why)")
            }
            written += n
        }
        close(fd)
        guard rename(temporaryPath, path) == 0 else {
            throw ServiceError("cannot replace \(path): \(String(cString: strerror(errno)))")
        }
    }
}
