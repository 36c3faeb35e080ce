import Foundation

/// Paths of the repository, found from this file so tests run from any directory.
enum Fixtures {
    static let repository: String = {
        var url = URL(fileURLWithPath: #filePath)
        for _ in 0..<3 { url.deleteLastPathComponent() }
        return url.path
    }()
    static let pack = "\(repository)/rules/kpm33b"
    static let config = "\(repository)/config/config.yaml"

    /// A fresh temporary directory; the caller removes it.
    static func temporaryDirectory() -> String {
        let dir = NSTemporaryDirectory() + "site-settings-tests-\(UUID().uuidString)"
        try! FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        return dir
    }

    static func write(_ text: String, to path: String) {
        _ = FileManager.default.createFile(atPath: path, contents: Data(text.utf8))
    }
}
