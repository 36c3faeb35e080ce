import Foundation
import RuleEngine

/// The YAML loader and checker on arbitrary pack and site-config text: the
/// whole load → check → compile path, and the rendering of every diagnostic.
///
/// Input: a pack; or, after a line `---site---`, a pack and a site config
/// (a site config alone is checked against the shipped pack when the pack
/// part is empty).
let marker = Array("\n---site---\n".utf8)
let shippedPack: [UInt8] = FileManager.default.contents(atPath: (ProcessInfo.processInfo.environment["FUZZ_RULES"] ?? "rules/kpm33b") + "/pack.yaml").map { [UInt8]($0) } ?? []

func fuzzOne(_ data: [UInt8]) {
    var pack = data
    var site: [UInt8]?
    if let at = firstRange(of: marker, in: data) {
        pack = Array(data[..<at])
        site = Array(data[(at + marker.count)...])
        if pack.isEmpty { pack = shippedPack }
    }
    _ = Compiler.check(pack: pack, site: site)
}

func firstRange(of needle: [UInt8], in haystack: [UInt8]) -> Int? {
    guard haystack.count >= needle.count else { return nil }
    for i in 0...(haystack.count - needle.count) where haystack[i] == needle[0] && Array(haystack[i..<i + needle.count]) == needle {
        return i
    }
    return nil
}
