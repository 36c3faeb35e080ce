/// The programs of every pack one process runs, and which pack owns which meter.
///
/// Made by `Compiler.build(packs:…)`. Each program was compiled with the
/// site config's view for its pack (its meters, the defaults it declares), so
/// a program alone behaves as if it were the only pack. A meter belongs to
///   1. the pack the site names for it (`meters: ID: { pack: NAME }`), else
///   2. the one pack whose id pattern claims it (`device.id.claim: pattern`), else
///   3. the site's `default_pack`, else to none (`unclaimed`).
/// With one pack, every id goes to it, as before there were several.
public struct ProgramSet: Sendable {
    public let programs: [Program]
    /// The whole site config (each program holds its pack's view of it).
    public let siteConfig: SiteConfig
    /// Meters the site config lists, resolved to a program index.
    let assigned: [String: Int]
    let defaultPack: Int?

    public init(single program: Program) {
        programs = [program]
        siteConfig = program.siteConfig
        assigned = [:]
        defaultPack = nil
    }

    init(programs: [Program], siteConfig: SiteConfig, assigned: [String: Int], defaultPack: Int?) {
        self.programs = programs
        self.siteConfig = siteConfig
        self.assigned = assigned
        self.defaultPack = defaultPack
    }

    /// The first program: with one pack, the program.
    public var first: Program { programs[0] }
    public var packNames: [String] { programs.map(\.packName) }

    /// Who owns an id, or why nobody does.
    enum Owner: Equatable { case pack(Int), none, ambiguous([Int]) }

    /// The owner of `id` (raw bytes, as in the payload).
    func owner(_ id: UnsafeRawBufferPointer) -> Owner {
        if programs.count == 1 { return .pack(0) }
        if !assigned.isEmpty, let i = assigned[String(decoding: id, as: UTF8.self)] { return .pack(i) }
        var found = -1
        var more: [Int] = []
        for (i, p) in programs.enumerated() where p.claims(id) {
            if found < 0 { found = i } else { more.append(i) }
        }
        if found >= 0 { return more.isEmpty ? .pack(found) : .ambiguous([found] + more) }
        return defaultPack.map { .pack($0) } ?? .none
    }

    /// The program that runs meter `id`, if any.
    public func program(for id: String) -> Program? {
        var s = id
        let found: Owner = s.withUTF8 { bytes in self.owner(UnsafeRawBufferPointer(bytes)) }
        if case .pack(let i) = found { return programs[i] }
        return nil
    }

    // The Program-like view the services use: shared site values from the
    // first program (every view has them), per-meter values from the owner.

    /// The program that runs meter `id`, or the first (one pack: the program).
    public func running(_ id: String) -> Program { program(for: id) ?? first }

    public var rootTopic: String { first.rootTopic }
    public var instance: String? { first.instance }
    public var statusTopic: String { first.statusTopic }
    /// Every pack's subscriptions, each filter once, in pack order.
    public var subscriptions: [String] { unique(programs.flatMap(\.subscriptions)) }
    /// Every pack's reply topics, each once.
    public var replyTopics: [String] { unique(programs.flatMap(\.replyTopics)) }
    public var routeNames: [String] { unique(programs.flatMap(\.routeNames)) }
    /// The pack names joined with `+` (`kpm33b+kpm37`), for logs.
    public var packName: String { packNames.joined(separator: "+") }
    public func isExcluded(_ id: String) -> Bool { siteConfig.exclude.contains { $0.value == id } }
    public func isValidDeviceID(_ id: String) -> Bool { program(for: id)?.isValidDeviceID(id) ?? false }
    public func silenceAllowed(for id: String) -> Int? { program(for: id)?.silenceAllowed(for: id) }
    public func discoveryTopic(for id: String) -> String? { program(for: id)?.discoveryTopic(for: id) }
    public func homeAssistantConfigs(for id: String, origin: Origin) -> [Outgoing] {
        program(for: id)?.homeAssistantConfigs(for: id, origin: origin) ?? []
    }

    private func unique(_ xs: [String]) -> [String] {
        var seen: Set<String> = []
        return xs.filter { seen.insert($0).inserted }
    }
}
