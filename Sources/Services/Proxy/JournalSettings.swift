import Journal
import SiteSettings

/// The journal's site settings (`proxy.journal_*`).
struct JournalSettings: Sendable {
    var maxBytes: Int
    var fsync: JournalFsync

    init(maxBytes: Int, fsync: JournalFsync) {
        self.maxBytes = maxBytes
        self.fsync = fsync
    }

    init(_ proxy: ProxySettings) {
        maxBytes = proxy.journalMaxBytes
        fsync = proxy.journalFsync
    }

    /// Segments of 1/16 of the bound, between 64 KiB and 16 MiB: whole
    /// segments are deleted, so back-pressure ends within a segment of 90 %.
    var segmentBytes: Int { min(16 << 20, max(64 << 10, maxBytes / 16)) }

    var fsyncName: String {
        switch fsync {
        case .never: "never"
        case .always: "always"
        case .interval(let ms): "interval(\(ms) ms)"
        }
    }
}
