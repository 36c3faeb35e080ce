import Topics

/// Commands sent on demand (`value: { request: … }`): a relay switched from
/// Home Assistant. Checked here; run by a config sender through
/// `Program+requests`.
struct CompiledRequest: Sendable {
    /// The clean command topic and the confirmed state's topic (`{root}`, `{id}`).
    let topic: Template
    let state: Template
    /// Accepted request payloads → the command's `{value}`, in pack order.
    let values: [(key: String, value: String)]
    let name: String
}

extension Checker {
    /// The variables of a request's topics: the meter must be found again from
    /// the topic alone, so no context or derived form.
    static let requestVariables = ["root", "id"]

    func checkRequest(_ r: RequestRules, command c: CommandRules) -> CompiledRequest? {
        let what = "the request topic of command '\(c.name.value)'"
        let topic = checkTemplate(r.topic, allowed: Self.requestVariables, what: what)
        let state = checkTemplate(r.state, allowed: Self.requestVariables, what: "the state topic of command '\(c.name.value)'")
        var ok = topic != nil && state != nil
        for (source, template) in [(r.topic, topic), (r.state, state)] {
            guard let template else { continue }
            let levels = template.render { $0 == "root" ? "root" : "\u{1}" }.split(separator: "/", omittingEmptySubsequences: false)
            if levels.filter({ $0 == "\u{1}" }).count != 1 || levels.contains(where: { $0.contains("\u{1}") && $0 != "\u{1}" }) {
                ok = false
                error(.invalidValue, "'\(source.value)' must hold {id} once, as a whole topic level",
                      hint: "the config sender finds the meter from that level, e.g. \"{root}/{id}/relay/set\"", at: source.mark)
            } else if !Topic.isValidTopic(template.render { $0 == "root" ? "root" : "id" }) {
                ok = false
                error(.invalidFilter, "'\(source.value)' is not a valid topic", hint: "no '+', '#' or empty levels", at: source.mark)
            }
        }
        if r.topic.value == r.state.value {
            ok = false
            error(.invalidValue, "the state topic of command '\(c.name.value)' is its request topic",
                  hint: "the confirmed state goes elsewhere, e.g. \"{root}/{id}/relay\"", at: r.state.mark)
        }
        if r.values.isEmpty {
            ok = false
            error(.missingKey, "the request of command '\(c.name.value)' accepts no value",
                  hint: "map request payloads to command values, e.g. values: { \"ON\": \"1\", \"OFF\": \"0\" }", at: r.mark)
        }
        var seen: Set<String> = []
        for (key, _) in r.values where !seen.insert(key.value).inserted || key.value.isEmpty {
            ok = false
            error(.duplicateName, "request value '\(key.value)' of command '\(c.name.value)' is empty or given twice", at: key.mark)
        }
        if !c.payload.contains(where: { $0.value.value.contains("{value}") }) {
            error(.unknownVariable, "command '\(c.name.value)' takes a request but its payload never uses {value}",
                  hint: "put the requested value in the payload, e.g. do1: \"{value}\"", at: r.mark)
        }
        guard ok, let topic, let state else { return nil }
        return CompiledRequest(topic: topic, state: state, values: r.values.map { ($0.key.value, $0.value.value) },
                               name: r.name ?? String(c.name.value.map { $0 == "_" ? " " : $0 }).capitalizedFirst)
    }
}
