/// Whether two id patterns can match the same id: lint's check of packs that
/// claim ids by pattern on a shared topic.
extension IDPattern {
    /// True when some id matches both patterns. Exact: a search over pairs of
    /// positions (atom, count so far), where an unbounded atom's count stops
    /// mattering once its minimum is reached, so the space stays small. Beyond
    /// `limit` states it answers true (the cautious answer for a warning).
    public func overlaps(_ other: IDPattern, limit: Int = 200_000) -> Bool {
        struct State: Hashable { var a: Int, ca: Int, b: Int, cb: Int }
        let x = atoms, y = other.atoms
        func clamp(_ atoms: [Atom], _ i: Int, _ c: Int) -> Int {
            i < atoms.count && atoms[i].max == .max ? min(c, atoms[i].min) : c
        }
        /// The positions reachable without consuming a byte (skipping atoms whose minimum is met).
        func closure(_ atoms: [Atom], _ i: Int, _ c: Int) -> [(Int, Int)] {
            var out = [(i, c)]
            var i = i, c = c
            while i < atoms.count && c >= atoms[i].min {
                i += 1
                c = 0
                out.append((i, c))
            }
            return out
        }
        var seen: Set<State> = []
        var work: [State] = []
        func push(_ s: State) {
            if seen.insert(s).inserted { work.append(s) }
        }
        for (a, ca) in closure(x, 0, 0) { for (b, cb) in closure(y, 0, 0) { push(State(a: a, ca: ca, b: b, cb: cb)) } }
        while let s = work.popLast() {
            if s.a == x.count && s.b == y.count { return true }
            if seen.count > limit { return true }
            guard s.a < x.count, s.b < y.count, s.ca < x[s.a].max, s.cb < y[s.b].max else { continue }
            // One byte both atoms allow moves both patterns on.
            guard (0..<256).contains(where: { x[s.a].set[$0] && y[s.b].set[$0] }) else { continue }
            let na = clamp(x, s.a, s.ca + 1), nb = clamp(y, s.b, s.cb + 1)
            for (a, ca) in closure(x, s.a, na) { for (b, cb) in closure(y, s.b, nb) { push(State(a: a, ca: ca, b: b, cb: cb)) } }
        }
        return false
    }
}
