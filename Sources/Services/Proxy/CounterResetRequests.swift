#if canImport(Glibc)
import Glibc
#endif
import RuleEngine

/// Operator requests to accept a counter reset the guard keeps refusing (a
/// replaced meter whose readings do not agree with each other enough):
/// `kpm33b-proxy accept-reset ID [FIELD]` leaves a file `ID` or `ID.FIELD`
/// in `<state-dir>/accept-reset/`; the proxy takes it within a second
/// (or at its next start), forgets what it forwarded for that counter, and
/// deletes the file. A file, not a signal: it works whether the proxy runs
/// or not, and needs no process id.
public struct CounterResetRequests {
    public let directory: String

    public init(stateDirectory: String) {
        directory = (stateDirectory.hasSuffix("/") ? stateDirectory : stateDirectory + "/") + "accept-reset"
    }

    /// Leaves a request. `id` passed the pack's id pattern and `field` is a
    /// guarded field's name, so neither can name another path.
    ///
    /// The directory and the file are given to the owner of the state
    /// directory: an operator runs this as root, the service (systemd's
    /// `DynamicUser`) must be able to read and delete them.
    public func request(id: String, field: String?) throws(ServiceError) {
        guard FileSystem.makeDirectories(directory, mode: 0o700) else {
            throw ServiceError("cannot create \(directory): \(String(cString: strerror(errno)))")
        }
        let path = directory + "/" + id + (field.map { "." + $0 } ?? "")
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw ServiceError("cannot write \(path): \(String(cString: strerror(errno)))") }
        close(fd)
        var owner = stat()
        let stateDirectory = String(directory.dropLast("/accept-reset".count))
        if stat(stateDirectory, &owner) == 0 && owner.st_uid != getuid() {
            _ = chown(directory, owner.st_uid, owner.st_gid)
            _ = chown(path, owner.st_uid, owner.st_gid)
        }
    }

    /// The requests waiting, removed from the directory.
    func take() -> [(id: String, field: String?)] {
        guard let names = FileSystem.list(directory) else { return [] }
        var requests: [(id: String, field: String?)] = []
        for name in names.sorted() where !name.hasPrefix(".") {
            _ = unlink(directory + "/" + name)
            if let dot = name.firstIndex(of: ".") {
                requests.append((String(name[..<dot]), String(name[name.index(after: dot)...])))
            } else {
                requests.append((name, nil))
            }
        }
        return requests
    }
}
