#if canImport(Glibc)
import Glibc
#endif

/// The few file operations the engine, the settings and the services need,
/// on the C library directly: the services do not load Foundation (its
/// libraries cost them more memory than everything else together).
package enum FileSystem {
    /// The whole file, or nil when it cannot be opened or read.
    package static func read(_ path: String) -> [UInt8]? {
        var failure: Int32 = 0
        return read(path, failure: &failure)
    }

    /// The whole file, or nil with the `errno` of the call that failed in `failure`.
    package static func read(_ path: String, failure: inout Int32) -> [UInt8]? {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else {
            failure = errno
            return nil
        }
        defer { close(fd) }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65_536)
        while true {
            let n = chunk.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
            if n < 0 {
                if errno == EINTR { continue }
                failure = errno
                return nil
            }
            if n == 0 { return bytes }
            bytes.append(contentsOf: chunk[0..<n])
        }
    }

    package static func exists(_ path: String) -> Bool {
        var info = stat()
        return stat(path, &info) == 0
    }

    package static func isDirectory(_ path: String) -> Bool {
        var info = stat()
        return stat(path, &info) == 0 && (info.st_mode & S_IFMT) == S_IFDIR
    }

    /// The names in a directory (without `.` and `..`), or nil when it cannot be read.
    package static func list(_ directory: String) -> [String]? {
        guard let dir = opendir(directory) else { return nil }
        defer { closedir(dir) }
        var names: [String] = []
        while let entry = readdir(dir) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
            }
            if name != "." && name != ".." { names.append(name) }
        }
        return names
    }

    /// `mkdir -p`: creates `path` and missing parents; true if it exists afterwards.
    package static func makeDirectories(_ path: String, mode: mode_t = 0o755) -> Bool {
        if isDirectory(path) { return true }
        var prefix = path.hasPrefix("/") ? "/" : ""
        for part in path.split(separator: "/") {
            prefix += part
            if !isDirectory(prefix) && mkdir(prefix, mode) != 0 && errno != EEXIST { return false }
            prefix += "/"
        }
        return isDirectory(path)
    }

    /// The process environment, as `ProcessInfo.processInfo.environment` has it.
    package static var environment: [String: String] {
        var result: [String: String] = [:]
        var pointer = environ
        while let entry = pointer.pointee {
            let text = String(cString: entry)
            if let equals = text.firstIndex(of: "=") {
                result[String(text[..<equals])] = String(text[text.index(after: equals)...])
            }
            pointer += 1
        }
        return result
    }
}
