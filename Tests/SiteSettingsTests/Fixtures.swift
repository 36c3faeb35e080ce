import Foundation
import TestSupport

/// Paths of the repository (`Repository`, TestSupport).
enum Fixtures {
    static let repository = Repository.root
    static let pack = "\(repository)/rules/kpm33b"
    static let config = "\(repository)/config/config.yaml"

    /// A fresh temporary directory; the caller removes it.
    static func temporaryDirectory() -> String { Repository.temporaryDirectory("site-settings-tests") }

    static func write(_ text: String, to path: String) { Repository.write(text, to: path) }
}
