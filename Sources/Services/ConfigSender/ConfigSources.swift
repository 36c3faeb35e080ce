#if canImport(Glibc)
import Glibc
#endif
import RuleEngine

/// The files a running program was built from — the pack's `pack.yaml` and
/// the site config — and how to tell that one changed.
///
/// `changed()` costs one `stat` per file; a file is read only when its
/// metadata moved, and counts as changed only when its bytes differ, so
/// `touch` is no change while an editor writing in place within the same
/// timestamp tick still is (its size or ctime moves, or the bytes differ).
struct ConfigSources {
    /// What `stat` says about a file; nil for a file that cannot be stat'ed.
    struct Signature: Equatable {
        var device: UInt64
        var inode: UInt64
        var size: Int64
        var modified: timespec
        var changed: timespec

        static func == (a: Signature, b: Signature) -> Bool {
            a.device == b.device && a.inode == b.inode && a.size == b.size
                && a.modified.tv_sec == b.modified.tv_sec && a.modified.tv_nsec == b.modified.tv_nsec
                && a.changed.tv_sec == b.changed.tv_sec && a.changed.tv_nsec == b.changed.tv_nsec
        }
    }

    let paths: [String]
    private var signatures: [String: Signature?] = [:]
    private var contents: [String: [UInt8]] = [:]

    init(_ options: ServiceOptions) {
        var ignored = DiagnosticReport()  // a missing pack is the reload's to report
        paths = Compiler.packFiles(options.rulePaths, into: &ignored) + (options.config.map { [$0] } ?? [])
        refresh()
    }

    /// Whether any file's bytes changed since the last look; the files as they
    /// are now become the reference either way.
    mutating func changed() -> Bool {
        var changed = false
        for path in paths {
            let signature = Self.signature(path)
            guard signature != signatures[path] ?? nil else { continue }
            signatures[path] = signature
            let bytes = Self.read(path)
            if bytes != contents[path] {
                contents[path] = bytes
                changed = true
            }
        }
        return changed
    }

    /// Takes the files as they are now as the reference (a forced reload).
    mutating func refresh() {
        for path in paths {
            signatures[path] = Self.signature(path)
            contents[path] = Self.read(path)
        }
    }

    private static func signature(_ path: String) -> Signature? {
        var info = stat()
        guard stat(path, &info) == 0 else { return nil }
        return Signature(device: UInt64(info.st_dev), inode: UInt64(info.st_ino), size: Int64(info.st_size),
                         modified: info.st_mtim, changed: info.st_ctim)
    }

    /// The bytes of `path`; empty when it cannot be read (the reload then names the problem).
    private static func read(_ path: String) -> [UInt8] {
        FileSystem.read(path) ?? []
    }
}
