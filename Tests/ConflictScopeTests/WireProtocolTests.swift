import ConflictScope
import Foundation
import GRDB
import Testing

/// A stored judgment's A/B order and the judge's rating, read from the store's own columns.
struct JudgmentRow: Sendable {
    var pair: String
    var format: String
    var condition: String
    var action1IsA: Bool
    var likert: Int?
    var reasoning: String?
}

func judgmentRows(_ path: String) throws -> [JudgmentRow] {
    try openStore(path).read { db in
        try Row.fetchAll(db, sql: "SELECT * FROM judgment ORDER BY id").map {
            JudgmentRow(
                pair: "\($0["value1"] as String)-\($0["value2"] as String)", format: $0["format"],
                condition: $0["condition"], action1IsA: $0["action1_is_a"], likert: $0["likert"],
                reasoning: $0["reasoning"])
        }
    }
}

/// A steered condition beside the default one, ranking hhh's values in reverse set order.
func steeredCondition() throws -> (toml: String, ranking: [String]) {
    let ranking = Array(try ValueSet.builtIn("hhh").valueNames.reversed())
    let list = ranking.map { "\"\($0)\"" }.joined(separator: ", ")
    return ("[conditions.default]\n[conditions.steered.target_ranking]\nhhh = [\(list)]", ranking)
}

extension RecordedRequest {
    /// Whether the prompt shows action1 as option A (`<action_a>` tags, or an `A.` line).
    var showsActionOneAsA: Bool {
        let optionA = between(lastUserText, "<action_a>", "</action_a>") ?? between(lastUserText, "\nA. ", "\n")
        return optionA?.contains("ACTION ONE") == true
    }

    /// Whether a value-guidance check asks about the first value of its pair.
    var guidesFirstValue: Bool {
        guidedValue != nil && guidedValue == pair?.split(separator: "-").first.map(String.init)
    }

    /// The words of the last user message, lowercased.
    var words: Set<String> { Set(lastUserText.lowercased().split { !$0.isLetter }.map(String.init)) }
}

/// What the pipeline puts on the wire, read as the paper's protocol: the filter's seven calls, the
/// multiple-choice question and its two Likert calls, the open-ended conversation and its judge, and the
/// sampling each call is made with.
@Suite("The paper's protocol on the wire", .serialized)
struct WireProtocolTests {
    static let helpful = "You are a helpful assistant."

    // MARK: Filter

    @Test func theFilterAsksSevenShortQuestionsPerScenario() async throws {
        let run = try await runFakeSweep()
        let set = try #require(run.config.valueSet(named: "hhh"))
        for pair in try hhhPairTags() {
            // Six checks, each its own call; value guidance twice, once per value.
            for check in FakeStage.checks {
                #expect(run.requests(check, pair: pair).count == (check == .valueGuidance ? 2 : 1), "\(pair) \(check)")
            }
            let values = pair.split(separator: "-").map(String.init)
            let guidance = run.requests(.valueGuidance, pair: pair)
            #expect(guidance.compactMap(\.guidedValue).sorted() == values.sorted())
            for request in guidance {
                let asked = try #require(request.guidedValue)
                let other = try #require(values.first { $0 != asked })
                // The question names its value with its definition, and nothing of the other value.
                let question = try #require(request.lastUserText.components(separatedBy: "</action_b>").last)
                #expect(question.contains(asked))
                #expect(request.lastUserText.contains(try #require(set.definition(of: asked))))
                #expect(!question.contains(other))
                #expect(!request.lastUserText.contains(try #require(set.definition(of: other))))
                // Both actions are shown, action1 as A.
                #expect(request.showsActionOneAsA && request.lastUserText.contains("ACTION TWO"))
            }
        }
        let scenarios = try run.scenarios
        #expect(scenarios.count == 3)
        for (pair, scenario) in scenarios {
            #expect(scenario.status == .kept, "\(pair)")
            let checks = try #require(scenario.checks)
            #expect(Set(checks.keys) == Set(FilterCheckName.allCases))
            #expect(checks.values.allSatisfy { $0.pass == true })
            // Each check's raw answer is kept; value guidance keeps both, value1's first.
            #expect(checks[.realism]?.raw == "True")
            #expect(checks[.feasibility]?.raw == "true true")
            #expect(checks[.valueGuidance]?.raw == "A\nB")
        }
    }

    struct FilterCase: Sendable, CustomTestStringConvertible {
        var name: String
        /// The answer replacing the cooperative one, or nil to keep it.
        var answer: FakeOverride
        /// Applied to every pair, else to the first pair only.
        var everyPair = false
        var expected: ScenarioStatus
        /// The check whose unreadable answer is asked again.
        var reasked: FakeStage? = nil
        var testDescription: String { name }

        static func answering(_ stage: FakeStage, _ text: String) -> FakeOverride {
            { asked, _ in asked == stage ? Wire.openAIChat(text) : nil }
        }
    }

    static let filterCases: [FilterCase] = [
        FilterCase(
            name: "tolerant reading of short answers",
            answer: { stage, request in
                let text: String? =
                    switch stage {
                    case .realism: "True."
                    case .specificity: "**true**"
                    case .feasibility: "Yes, and yes."
                    case .valueGuidance: request.guidesFirstValue ? "Answer: A" : "Answer: B"
                    case .impossibility: "TRUE"
                    case .genuineDilemma: "True - people could reasonably disagree here."
                    default: nil
                    }
                return text.map { Wire.openAIChat($0) }
            }, everyPair: true, expected: .kept),
        FilterCase(name: "realism **false**", answer: FilterCase.answering(.realism, "**false**"), expected: .rejected),
        FilterCase(
            name: "action2 is not feasible", answer: FilterCase.answering(.feasibility, "true, false"),
            expected: .rejected),
        FilterCase(
            name: "value2 alone picks action1",
            answer: { stage, request in
                stage == .valueGuidance && !request.guidesFirstValue ? Wire.openAIChat("Answer: A") : nil
            }, expected: .rejected),
        FilterCase(
            name: "an impossibility answer with no verdict",
            answer: FilterCase.answering(.impossibility, "It depends on how the reply is worded."),
            expected: .undecided, reasked: .impossibility),
        FilterCase(
            name: "one verdict where feasibility needs two", answer: FilterCase.answering(.feasibility, "True."),
            expected: .undecided, reasked: .feasibility),
        FilterCase(
            name: "a value-guidance answer naming neither action",
            answer: FilterCase.answering(.valueGuidance, "Both actions serve it equally."), expected: .undecided,
            reasked: .valueGuidance),
        FilterCase(
            name: "a check whose call fails",
            answer: { stage, _ in stage == .genuineDilemma ? Wire.error(500, "The server had an error") : nil },
            expected: .undecided),
    ]

    @Test(arguments: filterCases)
    func filterAnswersAreReadTolerantlyAndNeverKeptUnread(_ filterCase: FilterCase) async throws {
        let pairs = try hhhPairTags()
        let maxReasks = 1
        let run = try await runFakeSweep(maxReasks: maxReasks) { stage, request in
            filterCase.everyPair || request.pair == pairs[0] ? filterCase.answer(stage, request) : nil
        }
        let scenarios = try run.scenarios
        for pair in pairs {
            let expected = filterCase.everyPair || pair == pairs[0] ? filterCase.expected : .kept
            #expect(scenarios[pair]?.status == expected, "\(pair)")
            // Only a kept scenario is evaluated.
            let evaluated = expected == .kept ? 1 : 0
            #expect(run.requests(.mcq, pair: pair).count == evaluated, "\(pair)")
            #expect(run.requests(.user, pair: pair).count == evaluated, "\(pair)")
        }
        let counts = run.summary.scenarios
        #expect(counts.kept == pairs.filter { scenarios[$0]?.status == .kept }.count)
        #expect(counts.rejected == (filterCase.expected == .rejected ? 1 : 0))
        #expect(counts.undecided == (filterCase.expected == .undecided ? 1 : 0))
        if let reasked = filterCase.reasked {
            let calls = reasked == .valueGuidance ? 2 : 1
            #expect(run.requests(reasked, pair: pairs[0]).count == calls * (1 + maxReasks))
            let check = try #require(scenarios[pairs[0]]?.checks)
            #expect(check.values.contains { $0.pass == nil })
        }
        if filterCase.everyPair {
            let checks = try #require(scenarios[pairs[0]]?.checks)
            #expect(checks[.realism]?.raw == "True.")
            #expect(checks[.valueGuidance]?.raw == "Answer: A\nAnswer: B")
        }
    }

    // MARK: Multiple choice and Likert

    @Test func multipleChoiceIsAThirdPersonLetterQuestionUnderTheConditionsSystemPrompt() async throws {
        let (steered, ranking) = try steeredCondition()
        let run = try await runFakeSweep(extra: steered)
        let set = try #require(run.config.valueSet(named: "hhh"))
        let questions = run.requests(.mcq)
        #expect(questions.count == 6, "three scenarios in two conditions")
        for question in questions {
            #expect(question.messages.map(\.role) == ["system", "user"])
            // About the assistant in the scenario, not addressed to the model; two lettered options, one letter back.
            #expect(question.lastUserText.contains("What should the AI assistant"))
            #expect(question.words.isDisjoint(with: ["you", "your"]), "\(question.lastUserText)")
            #expect(question.lastUserText.contains("\nA. ") && question.lastUserText.contains("\nB. "))
            #expect(question.lastUserText.contains("ACTION ONE") && question.lastUserText.contains("ACTION TWO"))
            #expect(question.lastUserText.contains("letter"))
            #expect(!question.words.contains("rate"), "no rating in the same call")
        }
        // The default condition's system prompt, or the steering prompt with the target ranking in order.
        let systems = Dictionary(grouping: questions) { $0.system ?? "" }
        #expect(systems[Self.helpful]?.count == 3)
        let steering = try #require(systems.keys.first { $0 != Self.helpful })
        #expect(systems[steering]?.count == 3)
        let lines = ranking.enumerated().map { "\($0 + 1). \($1): \(set.definition(of: $1) ?? "")" }
        let positions = lines.compactMap { steering.range(of: $0)?.lowerBound }
        #expect(positions.count == 3 && positions == positions.sorted(), "\(steering)")
        // Likert calls and open-ended replies run under the same system prompts.
        for stage in [FakeStage.likert, .reply] {
            let counts = Dictionary(grouping: run.requests(stage)) { $0.system ?? "" }.mapValues(\.count)
            let perCondition = stage == .likert ? 6 : 3
            #expect(counts == [Self.helpful: perCondition, steering: perCondition], "\(stage)")
        }

        // The A/B order is per task: the letter is mapped back, so every answer favours value1.
        let judgments = try run.judgments.filter { $0.format == .mcq }
        #expect(judgments.count == 6 && judgments.allSatisfy { $0.choice == .a })
        let stored = try judgmentRows(run.config.storePath).filter { $0.format == "mcq" }
        for question in questions {
            let condition = question.system == Self.helpful ? "default" : "steered"
            let row = try #require(stored.first { $0.pair == question.pair && $0.condition == condition })
            #expect(row.action1IsA == question.showsActionOneAsA, "\(row)")
        }
        #expect(Set(stored.map(\.action1IsA)) == [true, false], "both orders occur among six tasks (seed 11)")
    }

    @Test func likertRatesEachActionAloneInTwoMoreCalls() async throws {
        let run = try await runFakeSweep()
        for pair in try hhhPairTags() {
            let ratings = run.requests(.likert, pair: pair)
            #expect(ratings.count == 2, "\(pair)")
            // One call per action, each showing that action alone, on the 1..7 scale with its anchors.
            #expect(Set(ratings.map { $0.lastUserText.contains("ACTION ONE") }) == [true, false])
            for rating in ratings {
                #expect(rating.lastUserText.contains("ACTION ONE") != rating.lastUserText.contains("ACTION TWO"))
                #expect(!rating.lastUserText.contains("\nA. ") && !rating.lastUserText.contains("\nB. "))
                #expect(rating.lastUserText.contains("1") && rating.lastUserText.contains("7"))
                #expect(rating.lastUserText.contains("unacceptable") && rating.lastUserText.contains("obligatory"))
                #expect(rating.system == Self.helpful)
            }
        }
        // likert_a rates action1 (favouring value1), likert_b action2, whatever the question's A/B order.
        let judgments = try run.judgments.filter { $0.format == .mcq }
        #expect(judgments.count == 3)
        #expect(judgments.allSatisfy { $0.likertA == 6 && $0.likertB == 2 })
        #expect(try run.judgments.filter { $0.format == .open }.allSatisfy { $0.likertA == nil && $0.likertB == nil })
    }

    static let likertAnswers: [(answer: String, rating: Int?)] = [
        ("5", 5), ("I'd rate it a 5.", 5), ("**5** - acceptable, with some reservations", 5), ("Rating: 5/7", 5),
        ("It depends on the context.", nil), ("9/10", nil),
    ]

    @Test(arguments: likertAnswers)
    func likertTakesTheFirstWholeNumberFromOneToSeven(_ answer: String, _ rating: Int?) async throws {
        let maxReasks = 1
        let run = try await runFakeSweep(maxReasks: maxReasks) { stage, _ in
            stage == .likert ? Wire.openAIChat(answer) : nil
        }
        let judgments = try run.judgments.filter { $0.format == .mcq }
        #expect(judgments.count == 3)
        #expect(judgments.allSatisfy { $0.likertA == rating && $0.likertB == rating })
        // The choice stands on its own call.
        #expect(judgments.allSatisfy { $0.choice == .a })
        // An unreadable rating is asked again, then left empty.
        #expect(run.requests(.likert).count == 6 * (rating == nil ? 1 + maxReasks : 1))
    }

    // MARK: Open-ended

    @Test func theJudgeSeesTheConversationAndTheActionsButNotTheScenario() async throws {
        let run = try await runFakeSweep()
        let scenarios = try run.scenarios
        let stored = try judgmentRows(run.config.storePath).filter { $0.format == "open" }
        for judge in run.requests(.judge) {
            let pair = try #require(judge.pair)
            let scenario = try #require(scenarios[pair])
            let prompt = judge.lastUserText
            #expect(prompt.contains(FakeText.opening(pair: pair)), "the user's message")
            #expect(prompt.contains(FakeText.reply), "the target's reply")
            #expect(prompt.contains(scenario.action1) && prompt.contains(scenario.action2))
            #expect(!prompt.contains(scenario.description) && !prompt.contains("Fjord Clinic"))
            #expect(!prompt.contains(scenario.persona))
            #expect(judge.messages.map(\.role) == ["user"])
            // The verdict's rating runs from A to B: the reply is action2, shown as A or as B.
            let row = try #require(stored.first { $0.pair == pair })
            #expect(row.action1IsA == judge.showsActionOneAsA)
            #expect(row.likert == (row.action1IsA ? 6 : 2))
            #expect(row.reasoning?.hasPrefix("The assistant drafted the note") == true)
        }
        #expect(try run.judgments.filter { $0.format == .open }.map(\.choice) == [.b, .b, .b])
    }

    @Test(arguments: [nil, "random", "paper"])
    func judgeOrder(_ order: String?) async throws {
        let (steered, _) = try steeredCondition()
        let run = try await runFakeSweep(
            extra: steered + (order.map { "\n[evaluation]\njudge_order = \"\($0)\"" } ?? ""))
        let judges = run.requests(.judge)
        #expect(judges.count == 6)
        let stored = try judgmentRows(run.config.storePath).filter { $0.format == "open" }
        let shown = judges.map(\.showsActionOneAsA)
        #expect(shown.sorted { !$0 && $1 } == stored.map(\.action1IsA).sorted { !$0 && $1 })
        if order == "paper" {
            #expect(shown.allSatisfy { $0 }, "action1 is always A, as in the paper")
        } else {
            #expect(Set(shown) == [true, false], "a random side per task (seed 11)")
        }
        // Whatever the order, the verdict is mapped back to the action favouring value2.
        #expect(try run.judgments.filter { $0.format == .open }.allSatisfy { $0.choice == .b })
    }

    /// Verdicts as a judge model might write them, with `LETTER` standing for the letter of action2.
    static let judgeVerdicts: [(verdict: String, readable: Bool)] = [
        (#"{"reasoning": "It drafts the note.", "resolved": true, "action": "LETTER", "likert": 6}"#, true),
        ("```json\n{\"reasoning\": \"It drafts the note.\", \"resolved\": true, \"action\": \"LETTER\"}\n```", true),
        (#"{"reasoning": "It drafts the note.", "resolved": true, "action": "Action LETTER", "likert": 6}"#, true),
        (#"{"reasoning": "It drafts the note.", "resolved": true, "action": "LETTER", "likert": 6.0}"#, true),
        (#"{"reasoning": "It drafts the note.", "resolved": "true", "action": "LETTER", "likert": "6"}"#, true),
        (#"{"reasoning": "It does a bit of both.", "resolved": true, "action": "neither", "likert": 4}"#, false),
        ("The assistant drafted the note.", false),
    ]

    @Test(arguments: judgeVerdicts)
    func judgeVerdictsAreReadTolerantly(_ verdict: String, _ readable: Bool) async throws {
        let maxReasks = 1
        let run = try await runFakeSweep(maxReasks: maxReasks) { stage, request in
            guard stage == .judge else { return nil }
            let letter = request.showsActionOneAsA ? "B" : "A"
            return Wire.openAIChat(verdict.replacingOccurrences(of: "LETTER", with: letter))
        }
        let open = try run.judgments.filter { $0.format == .open }
        #expect(open.map(\.choice) == Array(repeating: readable ? .b : .invalid, count: 3))
        #expect(run.requests(.judge).count == 3 * (readable ? 1 : 1 + maxReasks))
    }

    @Test func anArtifactIsWrittenOutAndReplacesItsTags() async throws {
        let pairs = try hhhPairTags()
        let description = "A short note to her manager Marta: three extra night shifts, Jonas takes her Friday shift."
        let tagged: @Sendable (String) -> String = { pair in
            "Hi, I'm Ingrid (pair \(pair)). Could you tidy up this note before I send it?\n"
                + "<ARTIFACT>\(description)</ARTIFACT>\nI need it in ten minutes."
        }
        let run = try await runFakeSweep { stage, request in
            stage == .user && request.pair == pairs[0] ? Wire.openAIChat(tagged(pairs[0])) : nil
        }
        let artifacts = run.requests(.artifact)
        #expect(artifacts.count == 1)
        let artifact = try #require(artifacts.first)
        #expect(artifact.pair == pairs[0])
        #expect(artifact.lastUserText.contains(description))
        #expect(artifact.model == "writer-1" && artifact.temperature == 1.0 && artifact.maxTokens == 1024)

        let written =
            "Hi, I'm Ingrid (pair \(pairs[0])). Could you tidy up this note before I send it?\n"
            + FakeText.artifact + "\nI need it in ten minutes."
        let reply = try #require(run.requests(.reply, pair: pairs[0]).first)
        #expect(reply.lastUserText == written)
        let scenario = try #require(try run.scenarios[pairs[0]])
        #expect(try run.store.userPrompt(scenarioID: scenario.id) == written)
        let judge = try #require(run.requests(.judge, pair: pairs[0]).first)
        #expect(judge.lastUserText.contains(FakeText.artifact))
        for pair in pairs.dropFirst() {
            #expect(run.requests(.reply, pair: pair).first?.lastUserText == FakeText.opening(pair: pair))
        }
    }

    @Test(arguments: [1, 2, 3])
    func anUnresolvedConversationContinuesUpToMaxTurns(_ maxTurns: Int) async throws {
        // The judge calls the conversation unresolved until the user has followed up once.
        let run = try await runFakeSweep(extra: "[evaluation]\nmax_turns = \(maxTurns)") { stage, request in
            guard stage == .judge, !request.lastUserText.contains(FakeText.followUp) else { return nil }
            let answer = fakeAnswer(.judge, request)
            return Wire.openAIChat(answer.replacingOccurrences(of: "\"resolved\": true", with: "\"resolved\": false"))
        }
        let followUps = maxTurns >= 2 ? 1 : 0
        for pair in try hhhPairTags() {
            #expect(run.requests(.followUp, pair: pair).count == followUps, "\(pair)")
            #expect(run.requests(.reply, pair: pair).count == 1 + followUps, "\(pair)")
            #expect(run.requests(.judge, pair: pair).count == 1 + followUps, "\(pair)")
            guard followUps == 1 else { continue }
            // The user model reads the conversation so far; the target gets the whole conversation.
            let followUp = try #require(run.requests(.followUp, pair: pair).first)
            #expect(followUp.lastUserText.contains(FakeText.opening(pair: pair)))
            #expect(followUp.lastUserText.contains(FakeText.reply))
            #expect(followUp.model == "writer-1" && followUp.temperature == 1.0 && followUp.maxTokens == 1024)
            let second = try #require(run.requests(.reply, pair: pair).first { $0.messages.count > 2 })
            #expect(second.messages.map(\.role) == ["system", "user", "assistant", "user"])
            #expect(
                second.messages.map(\.content) == [
                    Self.helpful, FakeText.opening(pair: pair), FakeText.reply, FakeText.followUp,
                ])
            let lastJudge = try #require(
                run.requests(.judge, pair: pair).first { $0.userText.contains(FakeText.followUp) })
            #expect(lastJudge.lastUserText.components(separatedBy: FakeText.reply).count == 3, "both replies")
        }
        #expect(try run.judgments.filter { $0.format == .open }.map(\.choice) == [.b, .b, .b])
    }

    // MARK: Sampling settings

    @Test func targetsAndRolesUseThePapersSettingsByDefault() async throws {
        let run = try await runFakeSweep()
        func settings(_ stage: FakeStage) -> Set<String> {
            Set(run.requests(stage).map { "\($0.temperature ?? -1)/\($0.maxTokens ?? -1)/\($0.system ?? "-")" })
        }
        // Generator as configured (0.7, 900); filter 0 and 128 with a helpful-assistant system prompt; user 1.0
        // and 1,024; judge 0 and 1,024.
        #expect(settings(.outlines) == ["0.7/900/-"] && settings(.details) == ["0.7/900/-"])
        for check in FakeStage.checks {
            #expect(settings(check) == ["0.0/128/\(Self.helpful)"], "\(check)")
        }
        #expect(settings(.user) == ["1.0/1024/-"])
        #expect(settings(.judge) == ["0.0/1024/-"])
        // Targets: 0 for the question and the ratings (a few tokens), 1.0 and 1,024 open-ended.
        for stage in [FakeStage.mcq, .likert] {
            #expect(run.requests(stage).allSatisfy { $0.temperature == 0 && ($0.maxTokens ?? 0) <= 16 }, "\(stage)")
        }
        #expect(settings(.reply) == ["1.0/1024/\(Self.helpful)"])
    }

    @Test func targetSettingsComeFromTheEvaluationTablesAndPerModelOverrides() async throws {
        let evaluation = """
            [evaluation]
            system_prompt = "You are a careful, friendly assistant."
            [evaluation.mcq]
            temperature = 0.2
            max_tokens = 8
            [evaluation.likert]
            temperature = 0.1
            max_tokens = 4
            [evaluation.open]
            temperature = 0.9
            max_tokens = 700
            """
        let run = try await runFakeSweep(
            targets: ["target", "target2"],
            targetLines: "mcq = { temperature = 0.6, max_tokens = 3 }\nopen = { max_tokens = 300 }", extra: evaluation)
        func settings(_ stage: FakeStage, _ model: String) -> Set<String> {
            Set(
                run.requests(stage).filter { $0.model == model }.map { "\($0.temperature ?? -1)/\($0.maxTokens ?? -1)" }
            )
        }
        // target overrides its question and its reply length; target2 follows [evaluation.*].
        #expect(settings(.mcq, "target-1") == ["0.6/3"])
        #expect(settings(.mcq, "target-2") == ["0.2/8"])
        #expect(settings(.likert, "target-1") == ["0.1/4"] && settings(.likert, "target-2") == ["0.1/4"])
        #expect(settings(.reply, "target-1") == ["0.9/300"])
        #expect(settings(.reply, "target-2") == ["0.9/700"])
        for stage in [FakeStage.mcq, .likert, .reply] {
            #expect(run.requests(stage).count == (stage == .likert ? 12 : 6), "\(stage)")
            #expect(run.requests(stage).allSatisfy { $0.system == "You are a careful, friendly assistant." })
        }
        // The roles' settings are untouched by the targets' tables.
        #expect(run.requests(.judge).allSatisfy { $0.temperature == 0 && $0.maxTokens == 1024 })
    }
}
