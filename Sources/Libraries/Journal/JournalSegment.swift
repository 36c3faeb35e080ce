/// One segment file as the journal tracks it.
struct JournalSegment {
    /// The sequence in the file name: the first record's sequence (the file may be empty).
    var first: UInt64
    /// Valid bytes: everything flushed into it, all whole records. The file is never longer
    /// except for a moment while a failed write is being cut back.
    var size: Int
    /// Full path of the file.
    var path: String

    /// `<first, 20 digits zero-padded>.seg`: sorts by name in sequence order, fits any UInt64.
    static func fileName(first: UInt64) -> String {
        let digits = String(first)
        return String(repeating: "0", count: 20 - digits.count) + digits + ".seg"
    }

    /// The first sequence of a segment file name, or nil for any other name.
    static func first(inFileName name: String) -> UInt64? {
        let utf8 = Array(name.utf8)
        guard utf8.count == 24, name.hasSuffix(".seg") else { return nil }
        var value: UInt64 = 0
        for byte in utf8[0..<20] {
            guard byte >= UInt8(ascii: "0"), byte <= UInt8(ascii: "9") else { return nil }
            let (times10, o1) = value.multipliedReportingOverflow(by: 10)
            let (sum, o2) = times10.addingReportingOverflow(UInt64(byte - UInt8(ascii: "0")))
            guard !o1, !o2 else { return nil }
            value = sum
        }
        return value
    }
}
