#if canImport(Glibc)
import Glibc
#endif
import RuleEngine

/// Operator requests to accept a counter reset the guard keeps refusing (a
/// replaced meter whose readings do not agree with each other enough):
/// `kpm33b-proxy accept-reset ID [FIELD]` leaves a file `ID` or `ID.FIELD`
/// in `<state-dir>[/<instance>]/accept-reset/`; the proxy takes it within a
/// second (or at its next start), forgets what it forwarded for that counter,
/// and deletes the file. A file, not a signal: it works whether the proxy
/// runs or not, and needs no process id.
public struct CounterResetRequests {
    /// The state directory as the operator named it (`--state-dir`).
    let base: String
    /// The site's instance, a subdirectory of `base`.
    let instance: String?
    public let directory: String

    public init(stateDirectory: String, instance: String? = nil) {
        base = stateDirectory
        self.instance = instance
        directory = (stateDirectory.hasSuffix("/") ? stateDirectory : stateDirectory + "/") + (instance.map { $0 + "/" } ?? "")
            + "accept-reset"
    }

    /// Leaves a request. `id` passed the pack's id pattern and `field` is a
    /// guarded field's name, so neither can name another path.
    ///
    /// An operator runs this as root in a directory the service's account
    /// owns and may change at will (systemd's `DynamicUser`), so nothing is
    /// done through a path below `base`: each level is opened relative to the
    /// one above with `O_NOFOLLOW`, the request is created with `O_EXCL` (never
    /// opened if it exists: no link is followed, nothing truncated), and only
    /// what this call opened is given, by descriptor, to the state
    /// directory's owner, who must be able to read and delete it. A link in
    /// place of a level or of the request is refused with an error.
    public func request(id: String, field: String?) throws(ServiceError) {
        guard FileSystem.makeDirectories(base, mode: 0o700) else {
            throw ServiceError("cannot create \(base): \(String(cString: strerror(errno)))")
        }
        // The operator's own path, followed as given (its parents are not the service's).
        var fd = open(base, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard fd >= 0 else { throw ServiceError("cannot open \(base): \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        var owner = stat()
        guard fstat(fd, &owner) == 0 else { throw ServiceError("cannot read \(base): \(String(cString: strerror(errno)))") }
        let giveAway = owner.st_uid != geteuid()
        var path = base
        for level in (instance.map { [$0] } ?? []) + ["accept-reset"] {
            path += (path.hasSuffix("/") ? "" : "/") + level
            if mkdirat(fd, level, 0o700) != 0 && errno != EEXIST {
                throw ServiceError("cannot create \(path): \(String(cString: strerror(errno)))")
            }
            let next = openat(fd, level, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
            guard next >= 0 else {
                throw ServiceError("cannot open \(path): \(String(cString: strerror(errno))) (refused: it must be a directory, not a link)")
            }
            close(fd)
            fd = next
            try giveToOwner(fd, owner, giveAway, path)
        }
        let name = id + (field.map { "." + $0 } ?? "")
        path += "/" + name
        let file = openat(fd, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o600)
        guard file >= 0 else {
            let error = errno
            var existing = stat()
            // The same request, still waiting: nothing to add.
            if error == EEXIST && fstatat(fd, name, &existing, AT_SYMLINK_NOFOLLOW) == 0
                && (existing.st_mode & S_IFMT) == S_IFREG && existing.st_nlink == 1 {
                return
            }
            throw ServiceError(error == EEXIST
                ? "refused: \(path) exists and is not a request (a link?); remove it and try again"
                : "cannot write \(path): \(String(cString: strerror(error)))")
        }
        defer { close(file) }
        try giveToOwner(file, owner, giveAway, path)
    }

    /// `fchown` of what this call opened, when root made it: the service reads
    /// and deletes the requests.
    private func giveToOwner(_ fd: Int32, _ owner: stat, _ giveAway: Bool, _ path: String) throws(ServiceError) {
        var info = stat()
        guard giveAway, fstat(fd, &info) == 0, info.st_uid == geteuid() else { return }
        guard fchown(fd, owner.st_uid, owner.st_gid) == 0 else {
            throw ServiceError("cannot give \(path) to the state directory's owner: \(String(cString: strerror(errno)))")
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
