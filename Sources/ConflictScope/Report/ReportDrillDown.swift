import Foundation

/// The drill-down's data: every scenario, every answer to it, and the transcripts the report carries,
/// as one compact JSON document the page reads when a scenario is opened. Repeated texts (system prompts,
/// the user message every target saw, the two orders of a multiple-choice question) are stored once.
struct ReportDrillDown {
    private var strings: [String] = []
    private var stringIndex: [String: Int] = [:]

    private mutating func intern(_ text: String) -> Int {
        if let index = stringIndex[text] { return index }
        strings.append(text)
        stringIndex[text] = strings.count - 1
        return strings.count - 1
    }

    /// The JSON text, safe inside a `<script type="application/json">` element.
    static func json(input: ReportInput, transcriptsPerPair: String) -> String {
        var builder = ReportDrillDown()
        return builder.build(input: input, transcriptsPerPair: transcriptsPerPair)
    }

    private mutating func build(input: ReportInput, transcriptsPerPair: String) -> String {
        let models = Array(Set(input.rows.map(\.judgment.model))).sorted()
        let conditions = Array(Set(input.rows.map(\.judgment.condition))).sorted { a, b in
            (conditionOrder(a), a) < (conditionOrder(b), b)
        }
        let modelIndex = Dictionary(uniqueKeysWithValues: models.enumerated().map { ($1, $0) })
        let conditionIndex = Dictionary(uniqueKeysWithValues: conditions.enumerated().map { ($1, $0) })
        var answers: [String: String] = [:]
        var answerTranscripts: [String: [Int]] = [:]
        var transcripts: [JSONValue] = []
        for row in input.rows {
            let judgment = row.judgment
            var transcriptRef = -1
            if let id = row.storeID, let transcript = input.transcripts[id] {
                transcriptRef = transcripts.count
                let messages = transcript.messages.map { message -> JSONValue in
                    .array([.string(String(message.role.rawValue.prefix(1))), .int(intern(message.content))])
                }
                transcripts.append(
                    .array([
                        .array(messages), .int(transcript.raw.map { intern($0) } ?? -1),
                        .int(transcript.reasoning.map { intern($0) } ?? -1),
                    ]))
            }
            let choice: String =
                switch judgment.choice {
                case .a: "A"
                case .b: "B"
                case .invalid: "i"
                case .missing: "m"
                }
            // Six characters per answer keep a paper-scale report small: model (code 48 + index), format and
            // condition (48 + format + 2 * condition), choice, and the three ratings as digits (0: none).
            var record = String(UnicodeScalar(48 + modelIndex[judgment.model]!)!)
            record.unicodeScalars.append(
                UnicodeScalar(48 + (judgment.format == .mcq ? 0 : 1) + 2 * conditionIndex[judgment.condition]!)!)
            record += choice
            for rating in [judgment.likertA, judgment.likertB, row.judgeLikert] {
                record += String(min(max(rating ?? 0, 0), 9))
            }
            answers[judgment.scenarioID, default: ""] += record
            if transcriptRef >= 0 || answerTranscripts[judgment.scenarioID] != nil {
                let earlier = answers[judgment.scenarioID]!.unicodeScalars.count / 6 - 1
                var refs = answerTranscripts[judgment.scenarioID] ?? Array(repeating: -1, count: earlier)
                refs.append(transcriptRef)
                answerTranscripts[judgment.scenarioID] = refs
            }
        }
        var scenarios: [JSONValue] = []
        let checks = FilterCheckName.allCases
        if input.scenarios.isEmpty {
            // A judgments file: the scenarios are only ids, pairs and act sides.
            var seen: Set<String> = []
            for row in input.rows where seen.insert(row.judgment.scenarioID).inserted {
                let judgment = row.judgment
                scenarios.append(
                    .object([
                        ("id", .string(judgment.scenarioID)), ("set", .string(judgment.valueSet)),
                        ("v1", .string(judgment.value1)), ("v2", .string(judgment.value2)),
                        ("act", .string(judgment.actSide?.rawValue)),
                    ]))
            }
        } else {
            for scenario in input.scenarios {
                var fields: [(String, JSONValue)] = [
                    ("id", .string(scenario.id)), ("set", .string(scenario.valueSet)),
                    ("v1", .string(scenario.value1)), ("v2", .string(scenario.value2)),
                    ("status", .string(scenario.status.rawValue)), ("template", .string(scenario.template?.rawValue)),
                    ("act", .string(scenario.actSide?.rawValue)), ("domain", .string(scenario.domain?.rawValue)),
                    ("description", .string(scenario.description)), ("persona", .string(scenario.persona)),
                    ("background", .string(scenario.background)), ("goal", .string(scenario.goal)),
                    ("action1", .string(scenario.action1)), ("action2", .string(scenario.action2)),
                ]
                if let user = input.userPrompts[scenario.id] { fields.append(("user", .int(intern(user)))) }
                if let verdicts = scenario.checks {
                    // One letter per check in FilterCheckName order: p(ass), f(ail), ? (no verdict).
                    let letters = checks.map { check -> String in
                        switch verdicts[check]?.pass {
                        case true?: "p"
                        case false?: "f"
                        case nil: "?"
                        }
                    }
                    fields.append(("checks", .string(letters.joined())))
                }
                if scenario.status == .invalid, let raw = scenario.raw { fields.append(("raw", .string(raw))) }
                scenarios.append(.object(fields))
            }
        }
        let scenarioIDs = Set(
            scenarios.compactMap { item -> String? in
                if case .object(let fields) = item, case .string(let id)? = fields.first?.1 { return id }
                return nil
            })
        let document = JSONValue.object([
            ("models", .array(models.map { .string($0) })), ("conditions", .array(conditions.map { .string($0) })),
            ("checks", .array(checks.map { .string($0.rawValue) })),
            ("transcripts_per_pair", .string(transcriptsPerPair)),
            ("scenarios", .array(scenarios)),
            (
                "answers",
                .object(answers.keys.filter(scenarioIDs.contains).sorted().map { ($0, .string(answers[$0]!)) })
            ),
            (
                "answer_transcripts",
                .object(answerTranscripts.keys.sorted().map { ($0, .array(answerTranscripts[$0]!.map { .int($0) })) })
            ),
            ("transcripts", .array(transcripts)), ("strings", .array(strings.map { .string($0) })),
        ])
        // `<` only occurs inside JSON strings, where \u003c means the same; this keeps `</script>` out.
        return document.serialized().replacingOccurrences(of: "<", with: "\\u003c")
    }
}
