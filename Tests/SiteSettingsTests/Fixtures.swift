import Foundation
import SiteSettings
import TestSupport

/// Paths of the repository (`Repository`, TestSupport), and a site config loaded as a service loads it.
enum Fixtures {
    static let repository = Repository.root
    static let pack = "\(repository)/rules/kpm33b"
    static let config = "\(repository)/config/config.yaml"

    /// A fresh temporary directory; the caller removes it.
    static func temporaryDirectory() -> String { Repository.temporaryDirectory("site-settings-tests") }

    static func write(_ text: String, to path: String) { Repository.write(text, to: path) }

    /// Loads `yaml` as `site.yaml` with the shipped pack, as a service loads
    /// it: the rendered errors, or the warnings (`no errors` when there are
    /// none), and the settings when it loaded.
    static func load(_ yaml: String) -> (text: String, settings: ServiceSettings?) {
        let dir = temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        write(yaml, to: "\(dir)/site.yaml")
        do {
            let site = try Site.load(rules: pack, config: "\(dir)/site.yaml")
            let text = site.warnings.diagnostics.isEmpty ? "no errors" : site.warnings.description
            return (text.replacingOccurrences(of: dir + "/", with: ""), site.settings)
        } catch {
            return (error.description.replacingOccurrences(of: dir + "/", with: ""), nil)
        }
    }

    /// Loads `yaml` as `site.yaml` with the shipped pack, as a service loads it.
    static func site(_ yaml: String) throws -> Site {
        let dir = temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        write(yaml, to: "\(dir)/site.yaml")
        return try Site.load(rules: pack, config: "\(dir)/site.yaml")
    }
}
