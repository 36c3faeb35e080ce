import Glibc

/// The system calls the journal makes, each retrying `EINTR` and turning a failure into a `JournalError`.
///
/// Nothing else in the target calls Glibc's file functions directly, so every error
/// names its path and every short read or write is handled in one place.
enum Posix {
    /// Creates `path` and any missing parent directories (`mkdir -p`); an existing directory is fine.
    static func makeDirectories(_ path: String) throws(JournalError) {
        var prefix = path.hasPrefix("/") ? "/" : ""
        for component in path.split(separator: "/", omittingEmptySubsequences: true) {
            prefix += component
            if mkdir(prefix, 0o755) != 0 && Glibc.errno != EEXIST {
                throw .lastSystemError("create directory", path: prefix)
            }
            prefix += "/"
        }
        // mkdir says EEXIST for a plain file too: make sure the result is a directory.
        var info = stat()
        guard stat(path, &info) == 0 else { throw .lastSystemError("stat directory", path: path) }
        guard (info.st_mode & S_IFMT) == S_IFDIR else {
            throw JournalError(errno: ENOTDIR, operation: "open directory", path: path)
        }
    }

    /// `open(2)` with `O_CLOEXEC`, so that a child the service starts never inherits a journal file.
    static func open(_ path: String, _ flags: Int32, mode: mode_t = 0o644, operation: String) throws(JournalError) -> Int32 {
        while true {
            let fd = Glibc.open(path, flags | O_CLOEXEC, mode)
            if fd >= 0 { return fd }
            if Glibc.errno != EINTR { throw .lastSystemError(operation, path: path) }
        }
    }

    /// Closes a descriptor; errors are ignored because the data was already handed to the kernel.
    static func close(_ fd: Int32) {
        if fd >= 0 { _ = Glibc.close(fd) }
    }

    /// Writes all `count` bytes at `offset`, looping over short writes.
    static func pwriteAll(_ fd: Int32, _ base: UnsafeRawPointer, _ count: Int, at offset: Int,
                          path: String, operation: String) throws(JournalError) {
        var done = 0
        while done < count {
            let n = Glibc.pwrite(fd, base + done, count - done, off_t(offset + done))
            if n > 0 {
                done += n
            } else if n < 0 && Glibc.errno == EINTR {
                continue
            } else {
                // n == 0 would loop forever; report it as "no space", the only way a regular file does that.
                throw n == 0 ? JournalError(errno: ENOSPC, operation: operation, path: path)
                             : .lastSystemError(operation, path: path)
            }
        }
    }

    /// Reads up to `count` bytes at `offset`; fewer only at the end of the file.
    static func pread(_ fd: Int32, _ base: UnsafeMutableRawPointer, _ count: Int, at offset: Int,
                      path: String) throws(JournalError) -> Int {
        var done = 0
        while done < count {
            let n = Glibc.pread(fd, base + done, count - done, off_t(offset + done))
            if n > 0 {
                done += n
            } else if n == 0 {
                break
            } else if Glibc.errno != EINTR {
                throw .lastSystemError("read", path: path)
            }
        }
        return done
    }

    /// The size of an open file.
    static func size(_ fd: Int32, path: String) throws(JournalError) -> Int {
        var info = stat()
        guard fstat(fd, &info) == 0 else { throw .lastSystemError("stat", path: path) }
        return Int(info.st_size)
    }

    /// Cuts the file to `size` bytes.
    static func truncate(_ fd: Int32, to size: Int, path: String) throws(JournalError) {
        while ftruncate(fd, off_t(size)) != 0 {
            if Glibc.errno != EINTR { throw .lastSystemError("truncate", path: path) }
        }
    }

    /// `fdatasync(2)`: the file's data (and its size) on stable storage.
    static func dataSync(_ fd: Int32, path: String) throws(JournalError) {
        while fdatasync(fd) != 0 {
            if Glibc.errno != EINTR { throw .lastSystemError("fdatasync", path: path) }
        }
    }

    /// `fsync(2)` of a directory: its entries (created or removed files) on stable storage.
    static func sync(_ fd: Int32, path: String) throws(JournalError) {
        while fsync(fd) != 0 {
            if Glibc.errno != EINTR { throw .lastSystemError("fsync directory", path: path) }
        }
    }

    /// Removes a file; one that is already gone counts as removed.
    static func unlink(_ path: String) throws(JournalError) {
        if Glibc.unlink(path) != 0 && Glibc.errno != ENOENT {
            throw .lastSystemError("delete", path: path)
        }
    }

    /// `link(2)`: gives the file `from` the name `to` too, atomically; false when `to` exists.
    static func link(_ from: String, to: String) throws(JournalError) -> Bool {
        if Glibc.link(from, to) == 0 { return true }
        if Glibc.errno == EEXIST { return false }
        throw .lastSystemError("link to \(to)", path: from)
    }

    /// The names in a directory, without "." and "..".
    static func listDirectory(_ path: String) throws(JournalError) -> [String] {
        guard let dir = opendir(path) else { throw .lastSystemError("list directory", path: path) }
        defer { closedir(dir) }
        var names: [String] = []
        while true {
            Glibc.errno = 0
            guard let entry = readdir(dir) else {
                if Glibc.errno != 0 { throw .lastSystemError("list directory", path: path) }
                return names
            }
            // d_name is a fixed-size C array imported as a tuple; it is NUL-terminated.
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(cString: raw.baseAddress!.assumingMemoryBound(to: CChar.self))
            }
            if name != "." && name != ".." { names.append(name) }
        }
    }

    /// Nanoseconds of `CLOCK_MONOTONIC`: immune to wall-clock jumps, so fsync intervals stay intervals.
    static func monotonicNanoseconds() -> Int64 {
        var now = timespec()
        clock_gettime(CLOCK_MONOTONIC, &now)
        return Int64(now.tv_sec) * 1_000_000_000 + Int64(now.tv_nsec)
    }
}
