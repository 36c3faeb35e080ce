import Foundation
@testable import RuleEngine
@testable import RuleTesting
import TestSupport

/// Paths of the repository (`Repository`, TestSupport).
enum Fixtures {
    static let repository = Repository.root
    static let pack = "\(repository)/rules/kpm33b"

    /// A fresh temporary directory, removed by the caller with `cleanup`.
    static func temporaryDirectory() -> String { Repository.temporaryDirectory() }

    static func write(_ text: String, to path: String) { Repository.write(text, to: path) }

    /// Every payload of every golden input, as bytes.
    static func goldenPayloads() -> [[UInt8]] {
        var out: [[UInt8]] = []
        for c in GoldenCase.discover(in: pack) {
            let data = [UInt8](FileManager.default.contents(atPath: c.inputPath)!)
            for line in data.split(separator: UInt8(ascii: "\n")) {
                guard let first = line.first, first != UInt8(ascii: "#"), first != UInt8(ascii: "@"),
                      let space = line.firstIndex(of: UInt8(ascii: " ")) else { continue }
                out.append(Array(line[(space + 1)...]))
            }
        }
        return out
    }

    static func program(config: String? = nil, siteYAML: String? = nil) throws -> Program {
        if let siteYAML {
            let dir = temporaryDirectory()
            defer { try? FileManager.default.removeItem(atPath: dir) }
            write(siteYAML, to: "\(dir)/site.yaml")
            return try Compiler.build(rules: pack, config: "\(dir)/site.yaml")
        }
        return try Compiler.build(rules: pack, config: config)
    }
}

extension Fixtures {
    /// The KPM33B pack text, for variants made by editing it.
    static var packText: String {
        String(decoding: FileManager.default.contents(atPath: "\(pack)/pack.yaml")!, as: UTF8.self)
    }

    /// The KPM33B pack with `edit` applied, compiled with the default site
    /// config (or `siteYAML`); the temporary directory is removed before returning.
    static func variant(_ edit: (String) -> String, siteYAML: String? = nil) throws -> Program {
        let dir = temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let edited = edit(packText)
        precondition(edited != packText || siteYAML != nil, "the edit changed nothing")
        write(edited, to: "\(dir)/pack.yaml")
        var config: String?
        if let siteYAML {
            config = "\(dir)/site.yaml"
            write(siteYAML, to: config!)
        }
        return try Compiler.build(rules: dir, config: config)
    }

    /// One tag feeding two output fields: the pack of the `render` overflow.
    static func tagMappedTwice(_ text: String) -> String {
        let line = "        - active_power: { from: zyggl, name: Active power, device_class: power, state_class: measurement, precision: 3 }\n"
        precondition(text.contains(line))
        return text.replacingOccurrences(of: line, with: line
            + "        - active_power_copy: { from: zyggl, name: Active power copy, device_class: power, state_class: measurement, precision: 3 }\n")
    }
}
