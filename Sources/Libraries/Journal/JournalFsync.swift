/// When the journal asks the kernel to put written data on stable storage.
///
/// This only decides what survives a power loss or a kernel crash. A process
/// crash (even SIGKILL) loses nothing that `write(2)` accepted: the bytes sit in
/// the kernel's page cache, which belongs to the file, not to the process, and
/// reach the disk later on their own.
public enum JournalFsync: Sendable, Equatable {
    /// Never call `fdatasync`; the kernel writes back when it wants (typically within 30 s).
    case never
    /// `fdatasync` at most once per interval, at the first flush after it elapsed (monotonic clock).
    case interval(milliseconds: Int)
    /// `fdatasync` after every flush that wrote something, and after every stored acknowledgement.
    case always
}
