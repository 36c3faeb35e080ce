import YAML

/// Meters that measure several loops under consecutive ids (`device.loops`,
/// the KPM312: base +0…+3). The site names the base id; the pack derives the
/// others, which get their own Home Assistant device linked to the base one.
extension Compiler {
    /// The ids of a meter with `count` loops: the trailing digits of `base`
    /// count up, keeping their width (`312A000000098` → …099, …100, …101);
    /// nil when the id has no trailing digits or they would overflow their width.
    public static func loopIDs(base: String, count: Int) -> [String]? {
        let digits = min(18, base.reversed().prefix { $0.isASCII && $0.isNumber }.count)
        guard count >= 1, digits > 0, let n = Int(base.suffix(digits)) else { return nil }
        var out: [String] = []
        for k in 0..<count {
            let text = String(n + k)
            guard text.count <= digits else { return nil }
            out.append(base.dropLast(digits) + String(repeating: "0", count: digits - text.count) + text)
        }
        return out
    }
}

extension Checker {
    /// The loop ids of every meter the site lists for this pack, checked
    /// against the id pattern and against each other.
    func checkLoops(device: CompiledDevice?) -> [String: (base: String, index: Int)] {
        guard let loops = pack.device.loops else { return [:] }
        guard (1...64).contains(loops.value) else {
            error(.invalidValue, "'loops' must be 1 to 64", hint: "the KPM312 measures 4 loops: loops: 4", at: loops.mark)
            return [:]
        }
        var out: [String: (base: String, index: Int)] = [:]
        for id in site.meters.keys.sorted() {
            let mark = site.meterMarks[id] ?? Mark(line: 1, column: 1)
            guard let ids = Compiler.loopIDs(base: id, count: loops.value) else {
                siteContext.error(.invalidName, "meter '\(id)' cannot be the base of \(loops.value) loops",
                                  hint: "its last digits count the loops: base +0…+\(loops.value - 1) must keep their width", at: mark)
                continue
            }
            for (k, loop) in ids.enumerated() {
                if let device, !device.isValid(Array(loop.utf8)) {
                    siteContext.error(.invalidName, "loop \(k) of meter '\(id)' has the id '\(loop)', which is not a valid meter id",
                                      hint: device.pattern.map { "ids match \($0.source)" }, at: mark)
                }
                if let other = out[loop] {
                    siteContext.error(.meterPack, "loop id '\(loop)' of meter '\(id)' is also loop \(other.index) of meter '\(other.base)'",
                                      hint: "list only base ids, \(loops.value) apart", at: mark)
                }
                out[loop] = (id, k)
            }
        }
        return out
    }
}
