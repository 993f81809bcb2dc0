import Foundation

/// A built-in provider whose models answer every stage's prompt deterministically, offline.
///
/// Like a real provider it sees only the request: it recognises a stage by the prompt's `Task:` line
/// and reads the filled-in template. Simulated writers leave machine-readable markers in their text
/// (`⟦v:value⟧` on an action, `⟦pair:a|b⟧` on a scenario and the user's message, `⟦chose:value⟧` in a
/// target's reply) that other simulated roles read; on text without markers (written by a real model)
/// they fall back to lexical similarity or a seeded coin. Targets choose between two values with
/// Bradley-Terry probability from their latent utilities for the format, shifted towards a steering
/// prompt's ranking by their steerability. Every answer is a function of (model, request, sample index).
public struct SimulatedProvider: LLMProvider {
    /// Latent behaviour by provider model id; models without one act as neutral writers and judges.
    public let behaviours: [String: SweepConfig.SimulatedBehaviour]

    /// Each answer takes this long.
    let latency: Duration

    public init(behaviours: [String: SweepConfig.SimulatedBehaviour], latency: Duration = .zero) {
        self.behaviours = behaviours
        self.latency = latency
    }

    /// The simulated models of `provider` in `config`.
    public init(config: SweepConfig, provider: String) {
        var behaviours: [String: SweepConfig.SimulatedBehaviour] = [:]
        for model in config.models.values where model.provider == provider {
            if let behaviour = model.simulated { behaviours[model.modelID] = behaviour }
        }
        self.init(
            behaviours: behaviours, latency: .milliseconds(config.providers[provider]?.latencyMilliseconds ?? 0))
    }

    public func embed(_ texts: [String], model: String) async throws(ProviderError) -> [[Double]] {
        texts.map(LexicalEmbedding.embed)
    }

    public func chat(_ request: ChatRequest) async throws(ProviderError) -> ChatResponse {
        if latency > .zero {
            do {
                try await Task.sleep(for: latency)
            } catch {
                throw ProviderError(.timeout, "cancelled")
            }
        }
        let text = answer(request)
        let prompt = request.messages.reduce(0) { $0 + $1.content.utf8.count }
        return ChatResponse(
            text: text, inputTokens: prompt / 4 + 8, outputTokens: min(request.maxTokens, text.utf8.count / 4 + 1))
    }

    func answer(_ request: ChatRequest) -> String {
        var rng = StableRandom(seed: UInt64(request.sampleIndex), key: "\(request.model)/\(request.cacheKey)")
        let prompt = request.messages.last { $0.role == .user }?.content ?? ""
        let system = request.messages.first { $0.role == .system }?.content
        let behaviour = behaviours[request.model]
        guard let (template, fields) = PromptLibrary.identify(prompt) else {
            return openReply(to: request.messages, system: system, behaviour: behaviour, rng: &rng)
        }
        switch template.name {
        case .outline: return outlines(fields, rng: &rng)
        case .scenario: return json(scenario(fields, actSide: Self.template(fields).actSide, rng: &rng))
        case .singleStage, .direct:
            let count = Int(fields["count"] ?? "") ?? 1
            let scenarios = (0..<max(count, 1)).map { _ -> [String: Any] in
                guard template.name == .direct else {
                    return scenario(fields, actSide: Self.template(fields).actSide, rng: &rng)
                }
                let acting: ActSide = rng.uniform() < 0.5 ? .action1 : .action2
                var object = scenario(fields, actSide: acting, rng: &rng)
                object["acting"] = acting.rawValue
                return object
            }
            return json(["scenarios": scenarios])
        case .filterRealism, .filterSpecificity, .filterImpossibility, .filterGenuineDilemma:
            // About one scenario in six fails a check.
            return rng.uniform() < 0.03 ? "false" : "true"
        case .filterFeasibility: return rng.uniform() < 0.01 ? "true, false" : "true true"
        case .filterValueGuidance:
            let value = fields["value"] ?? ""
            let onA = Marker.value(in: fields["action1"] ?? "") == value
            return (onA != (rng.uniform() < 0.02)) ? "A" : "B"
        case .mcq: return multipleChoice(fields, system: system, behaviour: behaviour, rng: &rng)
        case .likert: return likert(fields, system: system, behaviour: behaviour, rng: &rng)
        case .user: return userMessage(fields, rng: &rng)
        case .userFollowup:
            let markers = Marker.all(in: fields["conversation"] ?? "")
            return "I really need an answer from you now, please just tell me what to do. \(markers)"
        case .artifact: return "Dear team, as discussed, here are the details you asked for. Regards."
        case .judge: return judgement(fields, rng: &rng)
        case .deployment, .steering, .templateSideEffectMild, .templateSideEffectStrong, .templateMeansMild,
            .templateMeansStrong:
            return "I am not sure what you would like me to do."
        }
    }

    /// The template a stage-1 or stage-2 prompt was rendered with (its instructions or its action roles).
    private static func template(_ fields: [String: String]) -> ScenarioTemplate {
        ScenarioTemplate.allCases.first { template in
            fields["template"] == PromptLibrary.template(template.prompt).instructions
        } ?? (fields["action_roles"] == ScenarioDetailsStage.actionRoles(.meansMild) ? .meansMild : .sideEffectMild)
    }

    // MARK: Writers

    private static let domains = [
        "a hospital's patient portal", "a university admissions office", "a small bakery's online shop",
        "a city transit help desk", "a tenants' rights hotline", "a freelance translator's inbox",
        "a high-school chemistry class", "a wildlife rescue charity", "a regional newspaper", "a fintech budgeting app",
        "a veterinary clinic", "a public library's reference desk", "a mountain rescue team", "a game studio's forum",
        "a family law practice", "a food bank's volunteer rota", "a solar installer's sales team",
        "an airline's rebooking chat", "a community theatre", "a dental practice", "a startup's HR department",
        "a hiking gear retailer", "an elderly care home", "a coding bootcamp", "a pharmacy's advice line",
        "a museum's education team", "a ferry operator", "a climbing gym", "a recycling cooperative",
        "a music school", "a wedding planner's studio", "a bike-sharing service",
    ]
    private static let people = [
        "Amara Okafor", "Tomasz Nowak", "Lucía Fernández", "Kenji Watanabe", "Priya Raman", "Jonas Becker",
        "Fatima Haddad", "Liam O'Connell", "Mei Lin", "Diego Alvarez", "Sofia Rossi", "Kwame Mensah", "Ingrid Dahl",
        "Omar Farouk", "Hannah Schulz", "Rafael Costa", "Aiko Sato", "Noah Goldberg", "Zainab Yusuf", "Pierre Martin",
    ]
    private static let details = [
        "a deadline tomorrow morning", "an unpaid invoice", "a medical appointment", "a leaked spreadsheet",
        "a safety inspection", "a scholarship application", "a product recall", "a custody hearing",
        "a broken ventilation unit", "a job offer", "a late rent payment", "a contested review", "a fundraising drive",
        "a data export request", "a storm warning", "an exam result", "a loan application", "a wedding speech",
    ]

    private func pick<T>(_ items: [T], _ rng: inout StableRandom) -> T { items[Int(rng.next() % UInt64(items.count))] }

    private func outlines(_ fields: [String: String], rng: inout StableRandom) -> String {
        let value1 = fields["value1"] ?? "value one"
        let value2 = fields["value2"] ?? "value two"
        let count = Int(fields["count"] ?? "") ?? 1
        let outlines = (0..<max(count, 1)).map { _ -> [String: String] in
            let domain = pick(Self.domains, &rng)
            let person = pick(Self.people, &rng)
            let detail = pick(Self.details, &rng)
            return [
                "context": "An assistant used at \(domain) helps \(person) with \(detail).",
                "action_opportunity": "It could act on what \(person) asks about \(detail) at \(domain).",
                "good": "It serves \(value1) or \(value2), whichever the template says.",
                "harm": "It costs the other value.",
            ]
        }
        return json(["outlines": outlines])
    }

    /// A scenario whose acting action is `actSide`: markers name each action's value, the pair, and the
    /// value the acting action serves.
    private func scenario(_ fields: [String: String], actSide: ActSide, rng: inout StableRandom)
        -> [String: Any]
    {
        let value1 = fields["value1"] ?? "value one"
        let value2 = fields["value2"] ?? "value two"
        let context = fields["context"] ?? "An assistant at \(pick(Self.domains, &rng)) is asked for help."
        let person = pick(Self.people, &rng)
        let acting = actSide == .action1 ? value1 : value2
        let act = Marker.act
        return [
            "description":
                "\(context) \(fields["action_opportunity"] ?? "") \(Marker.pair(value1, value2)) \(Marker.act(acting))",
            "persona": "\(person), \(30 + Int(rng.next() % 40)), who relies on the assistant",
            "background": "Has dealt with this before. \(context)",
            "goal": "Get a decision today",
            "action1": "\(Marker.value(value1))\(actSide == .action1 ? act : "") "
                + (actSide == .action1 ? "Go ahead as asked." : "Hold back and decline."),
            "action2": "\(Marker.value(value2))\(actSide == .action2 ? act : "") "
                + (actSide == .action2 ? "Go ahead as asked." : "Hold back and decline."),
            "consequence1": "The \(value1) side is served; the \(value2) side suffers.",
            "consequence2": "The \(value2) side is served; the \(value1) side suffers.",
            "domain": pick(ScenarioDomain.allCases, &rng).rawValue,
        ]
    }

    private func userMessage(_ fields: [String: String], rng: inout StableRandom) -> String {
        let description = fields["description"] ?? ""
        let name = fields["first_name"] ?? "someone"
        // Speak from the scenario's own details, keeping only the markers other simulated roles read.
        let situation = description.replacingOccurrences(of: #"⟦[^⟧]*⟧"#, with: "", options: .regularExpression)
            .trimmingCharacters(in: .whitespaces)
        let opening = pick(["Hi,", "Hello,", "Hey there,", "Good morning,"], &rng)
        let artifact = rng.uniform() < 0.05 ? " Here is the note: <ARTIFACT>a short note to my manager</ARTIFACT>" : ""
        return
            "\(opening) this is \(name). \(situation) I need help right now.\(artifact) \(Marker.all(in: description))"
    }

    // MARK: Targets

    /// Utilities for `format`, moved towards the ranking in a steering system prompt, if any.
    private func utilities(
        _ behaviour: SweepConfig.SimulatedBehaviour?, format: EvaluationFormat, system: String?
    ) -> [String: Double] {
        var utilities = behaviour?.utilities[format] ?? [:]
        guard let behaviour, behaviour.steerability > 0, let system,
            let fields = PromptLibrary.template(.steering).extract(from: system), let ranking = fields["ranking"]
        else { return utilities }
        let ranked = ranking.split(separator: "\n").compactMap { line -> String? in
            guard let match = line.firstMatch(of: /^\s*\d+\.\s*([A-Za-z0-9_\-]+)/) else { return nil }
            return String(match.1)
        }
        let steps = Double(max(ranked.count - 1, 1))
        for (index, value) in ranked.enumerated() {
            utilities[value, default: 0] += behaviour.steerability * (steps - 2 * Double(index)) / steps
        }
        return utilities
    }

    /// The log-odds of choosing `first` over `second`: the utilities' difference, plus `act_bias` towards
    /// whichever of the two serves the acting side (`acting`).
    private func logOdds(
        _ first: String, _ second: String, acting: String?, _ utilities: [String: Double],
        behaviour: SweepConfig.SimulatedBehaviour?
    ) -> Double {
        let bias = behaviour?.actBias ?? 0
        let act = acting == first ? bias : acting == second ? -bias : 0
        return (utilities[first] ?? 0) - (utilities[second] ?? 0) + act
    }

    private func multipleChoice(
        _ fields: [String: String], system: String?, behaviour: SweepConfig.SimulatedBehaviour?,
        rng: inout StableRandom
    ) -> String {
        if rng.uniform() < (behaviour?.invalidRate ?? 0) { return "Both options have merit; I would rather not pick." }
        let utilities = utilities(behaviour, format: .mcq, system: system)
        let optionA = fields["option_a"] ?? ""
        let optionB = fields["option_b"] ?? ""
        guard let a = Marker.value(in: optionA), let b = Marker.value(in: optionB) else {
            return rng.uniform() < 0.5 ? "A" : "B"
        }
        let acting = optionA.contains(Marker.act) ? a : optionB.contains(Marker.act) ? b : nil
        let odds = logOdds(a, b, acting: acting, utilities, behaviour: behaviour)
        return rng.uniform() < 1 / (1 + exp(-odds)) ? "A" : "B"
    }

    /// A 1..7 rating of one action: higher the more the model prefers its value over the pair's other one.
    private func likert(
        _ fields: [String: String], system: String?, behaviour: SweepConfig.SimulatedBehaviour?,
        rng: inout StableRandom
    ) -> String {
        let action = fields["action"] ?? ""
        guard let value = Marker.value(in: action), let (first, second) = Marker.pair(in: fields["description"] ?? "")
        else { return String(1 + Int(rng.next() % 7)) }
        let other = value == first ? second : first
        let utilities = utilities(behaviour, format: .mcq, system: system)
        let odds = logOdds(
            value, other, acting: action.contains(Marker.act) ? value : other, utilities, behaviour: behaviour)
        let rating = 4 + 3 * tanh(odds / 2) + (rng.uniform() - 0.5) * 1.5
        return "\(min(7, max(1, Int(rating.rounded()))))"
    }

    private func openReply(
        to messages: [ChatMessage], system: String?, behaviour: SweepConfig.SimulatedBehaviour?,
        rng: inout StableRandom
    ) -> String {
        // An unusable reply still has text: over HTTP an empty reply is a transport fault, retried and then
        // failed (`missing`), where the embedded run would re-ask; an evasive reply is judged like any other.
        if rng.uniform() < (behaviour?.invalidRate ?? 0) { return "That is a hard one; I would rather not say." }
        let said = messages.filter { $0.role == .user }.map(\.content).joined(separator: "\n")
        guard let (a, b) = Marker.pair(in: said) else {
            return "Thanks for reaching out. Here is how I would approach it: start with the facts you have."
        }
        let utilities = utilities(behaviour, format: .open, system: system)
        let odds = logOdds(a, b, acting: Marker.acting(in: said), utilities, behaviour: behaviour)
        let chosen = rng.uniform() < 1 / (1 + exp(-odds)) ? a : b
        return
            "I understand. Given everything, I will put \(chosen) first here and go ahead accordingly. \(Marker.chose(chosen))"
    }

    // MARK: Judges

    private func judgement(_ fields: [String: String], rng: inout StableRandom) -> String {
        let optionA = fields["option_a"] ?? ""
        let optionB = fields["option_b"] ?? ""
        let conversation = fields["conversation"] ?? ""
        let chooseA: Bool
        if let chosen = Marker.chose(in: conversation), let a = Marker.value(in: optionA),
            let b = Marker.value(in: optionB),
            chosen == a || chosen == b
        {
            chooseA = chosen == a
        } else {
            // Real text: the option whose words the replies share more of.
            let replies = conversation.components(separatedBy: "Assistant:").dropFirst().joined(separator: " ")
            let reply = LexicalEmbedding.embed(replies)
            let similarityA = LexicalEmbedding.cosine(reply, LexicalEmbedding.embed(optionA))
            let similarityB = LexicalEmbedding.cosine(reply, LexicalEmbedding.embed(optionB))
            chooseA = similarityA == similarityB ? rng.uniform() < 0.5 : similarityA > similarityB
        }
        let likert = chooseA ? 1 + Int(rng.next() % 2) : 6 + Int(rng.next() % 2)
        return json([
            "reasoning": "The replies carry out action \(chooseA ? "A" : "B") more closely.", "resolved": true,
            "action": chooseA ? "A" : "B", "likert": likert,
        ])
    }

    private func json(_ object: Any) -> String {
        let data = (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])) ?? Data()
        return String(decoding: data, as: UTF8.self)
    }
}

/// The markers simulated roles leave for each other.
public enum Marker {
    public static func value(_ value: String) -> String { "⟦v:\(value)⟧" }
    public static func pair(_ a: String, _ b: String) -> String { "⟦pair:\(a)|\(b)⟧" }
    public static func chose(_ value: String) -> String { "⟦chose:\(value)⟧" }
    /// On the action that takes the action opportunity.
    public static let act = "⟦act⟧"
    /// On a scenario: the value the acting action serves.
    public static func act(_ value: String) -> String { "⟦act:\(value)⟧" }

    public static func acting(in text: String) -> String? {
        text.firstMatch(of: /⟦act:([^⟧]+)⟧/).map { String($0.1) }
    }

    /// The pair and act markers of a text, to carry into a message written from it.
    public static func all(in text: String) -> String {
        var markers: [String] = []
        if let (a, b) = pair(in: text) { markers.append(pair(a, b)) }
        if let value = acting(in: text) { markers.append(act(value)) }
        return markers.joined(separator: " ")
    }

    public static func value(in text: String) -> String? {
        text.firstMatch(of: /⟦v:([^⟧]+)⟧/).map { String($0.1) }
    }

    public static func pair(in text: String) -> (String, String)? {
        text.firstMatch(of: /⟦pair:([^|⟧]+)\|([^⟧]+)⟧/).map { (String($0.1), String($0.2)) }
    }

    public static func chose(in text: String) -> String? {
        text.firstMatch(of: /⟦chose:([^⟧]+)⟧/).map { String($0.1) }
    }
}
