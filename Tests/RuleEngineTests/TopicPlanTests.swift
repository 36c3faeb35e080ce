import Testing
@testable import RuleEngine
@testable import RuleTesting

/// A route's clean topic, built per reading from the meter's id, is what the
/// template renders: constants joined once, the id, a context level for the
/// meters that have one, an id form.
@Suite struct TopicPlanTests {
    @Test func thePlanRendersWhatTheTemplateDoes() throws {
        let program = try Fixtures.program(siteYAML: """
            root_topic: site/energy
            meters:
              "33B1225950027":
                context: garage

            """)
        let templates = ["{root}/{context/}{id}/seconds", "{root}/{id}/{short_id}/{model}", "{manufacturer}-{id}", "{id}", "fixed/{context/}x"]
        for source in templates {
            let template = try Template(source)
            let plan = TopicPlan(template, program: program)
            for id in ["33B1225950027", "33B1225950028"] {
                #expect(plan.topic(id, program) == program.render(template, id: id), "\(source) for \(id)")
            }
        }
        let seconds = TopicPlan(try Template("{root}/{context/}{id}/seconds"), program: program)
        #expect(seconds.topic("33B1225950027", program) == "site/energy/garage/33B1225950027/seconds")
        #expect(seconds.topic("33B1225950028", program) == "site/energy/33B1225950028/seconds")
    }

    @Test func withoutContextsTheTopicIsTextAndID() throws {
        let program = try Fixtures.program()
        let plan = TopicPlan(try Template("{root}/{context/}{id}/seconds"), program: program)
        #expect(plan.parts.count == 3 && plan.idOnly, "no context to look up per reading")
        #expect(plan.topic("33B1225950027", program) == "kpm33b/33B1225950027/seconds")
    }

    /// The id-only path writes every text and id part, whatever their lengths:
    /// an id twice, an id longer than a small string, no text at all.
    @Test func theIDOnlyPathWritesEveryPart() throws {
        let program = try Fixtures.program()
        for source in ["{id}/{root}/{id}", "{id}", "{root}/{id}/minutes"] {
            let template = try Template(source)
            let plan = TopicPlan(template, program: program)
            #expect(plan.idOnly, "\(source)")
            for id in ["33B1225950027", "", "a-much-longer-meter-identifier-0123456789"] {
                #expect(plan.topic(id, program) == program.render(template, id: id), "\(source) for \(id)")
            }
        }
    }

    /// One buffer across meters, as the engine keeps it: a long id after a
    /// short one and a short one after a long one leave nothing of the
    /// previous meter's topic behind.
    @Test func aReusedBufferKeepsNothingOfThePreviousMeter() throws {
        let program = try Fixtures.program(siteYAML: """
            meters:
              "33B1225950027":
                context: garage

            """)
        for source in ["{root}/{context/}{id}/seconds", "{root}/{id}/seconds", "{id}"] {
            let template = try Template(source)
            let plan = TopicPlan(template, program: program)
            var buffer: [UInt8] = []
            for id in ["33B1225950027", "A", "a-much-longer-meter-identifier-0123456789", "33B1225950028", "", "33B1225950027"] {
                plan.render(id: id, program: program, into: &buffer)
                #expect(String(decoding: buffer, as: UTF8.self) == program.render(template, id: id), "\(source) for '\(id)'")
            }
        }
    }
}

extension TopicPlan {
    /// Meter `id`'s topic as text, rendered into a fresh buffer.
    func topic(_ id: String, _ program: Program) -> String {
        var bytes: [UInt8] = []
        render(id: id, program: program, into: &bytes)
        return String(decoding: bytes, as: UTF8.self)
    }
}
