import Foundation

/// The repository the tests run in, found from this file so they run from any
/// directory, and small file helpers every test target uses.
public enum Repository {
    public static let root: String = {
        var url = URL(fileURLWithPath: #filePath)
        for _ in 0..<3 { url.deleteLastPathComponent() }  // Tests/TestSupport/Repository.swift
        return url.path
    }()

    /// A fresh temporary directory; the caller removes it.
    public static func temporaryDirectory(_ prefix: String = "kpm33b-tests") -> String {
        let dir = NSTemporaryDirectory() + "\(prefix)-\(UUID().uuidString)"
        try! FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        return dir
    }

    public static func write(_ text: String, to path: String) {
        _ = FileManager.default.createFile(atPath: path, contents: Data(text.utf8))
    }
}
