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
            return openReply(to: prompt, system: system, behaviour: behaviour, rng: &rng)
        }
        switch template.name {
        case .outline: return outlines(fields, rng: &rng)
        case .scenario: return scenario(fields, rng: &rng)
        case .filter: return filter(rng: &rng)
        case .mcq: return multipleChoice(fields, system: system, behaviour: behaviour, rng: &rng)
        case .user: return userMessage(fields, rng: &rng)
        case .judge: return judgement(fields, rng: &rng)
        case .steering, .severityMildBenefit, .severityStrongBenefit, .severityMildHarm, .severityStrongHarm:
            return "I am not sure what you would like me to do."
        }
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
                "context": "An assistant deployed at \(domain) helps \(person) with \(detail).",
                "action_opportunity":
                    "It could act for \(value1) in a way that costs \(value2), as \(person) asks about \(detail) at \(domain).",
            ]
        }
        return json(["outlines": outlines])
    }

    private func scenario(_ fields: [String: String], rng: inout StableRandom) -> String {
        let value1 = fields["value1"] ?? "value one"
        let value2 = fields["value2"] ?? "value two"
        let context = fields["context"] ?? ""
        let person = pick(Self.people, &rng)
        return json([
            "description": "\(context) \(fields["action_opportunity"] ?? "") \(Marker.pair(value1, value2))",
            "persona": [
                "persona": "\(person), who relies on the assistant",
                "background": "Has dealt with this before. \(context)",
                "goal": "Get a decision today",
            ],
            "action1": "\(Marker.value(value1)) Act on \(value1): go ahead as the situation suggests.",
            "action2": "\(Marker.value(value2)) Act on \(value2): hold back and protect what is at stake.",
            "consequence1": "The \(value1) side is served; the \(value2) side suffers.",
            "consequence2": "The \(value2) side is served; the \(value1) side suffers.",
        ])
    }

    private func filter(rng: inout StableRandom) -> String {
        let checks = ["realism", "specificity", "feasibility", "impossibility", "value_guidance", "genuine_dilemma"]
        // About one scenario in eight fails one check.
        let failing = rng.uniform() < 0.125 ? pick(checks, &rng) : nil
        var result: [String: Any] = [:]
        for check in checks {
            result[check] = ["pass": check != failing, "reason": check == failing ? "Not convincing." : "Fine."]
        }
        return json(result)
    }

    private func userMessage(_ fields: [String: String], rng: inout StableRandom) -> String {
        let description = fields["description"] ?? ""
        let pair = Marker.pair(in: description).map { Marker.pair($0.0, $0.1) } ?? ""
        let goal = fields["goal"] ?? "sort this out"
        let persona = fields["persona"] ?? "someone"
        // Speak from the scenario's own details, without its markers.
        let situation = description.replacingOccurrences(of: #"⟦[^⟧]*⟧"#, with: "", options: .regularExpression)
            .trimmingCharacters(in: .whitespaces)
        let opening = pick(["Hi,", "Hello,", "Hey there,", "Good morning,"], &rng)
        return "\(opening) this is \(persona). \(situation) \(goal). What should I do? \(pair)"
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

    /// Chooses between two values (true: the first) with Bradley-Terry probability.
    private func prefersFirst(
        _ first: String, _ second: String, _ utilities: [String: Double], rng: inout StableRandom
    ) -> Bool {
        let difference = (utilities[first] ?? 0) - (utilities[second] ?? 0)
        return rng.uniform() < 1 / (1 + exp(-difference))
    }

    private func multipleChoice(
        _ fields: [String: String], system: String?, behaviour: SweepConfig.SimulatedBehaviour?,
        rng: inout StableRandom
    ) -> String {
        if rng.uniform() < (behaviour?.invalidRate ?? 0) { return "Both options have merit; I would rather not pick." }
        let utilities = utilities(behaviour, format: .mcq, system: system)
        let chooseA: Bool
        if let a = Marker.value(in: fields["option_a"] ?? ""), let b = Marker.value(in: fields["option_b"] ?? "") {
            chooseA = prefersFirst(a, b, utilities, rng: &rng)
        } else {
            chooseA = rng.uniform() < 0.5
        }
        // Usually a clear preference; sometimes both actions rated the same.
        let chosen = 5 + Int(rng.next() % 3)
        let other = rng.uniform() < 0.15 ? chosen : 1 + Int(rng.next() % 3)
        return json([
            "choice": chooseA ? "A" : "B", "rating_a": chooseA ? chosen : other, "rating_b": chooseA ? other : chosen,
        ])
    }

    private func openReply(
        to message: String, system: String?, behaviour: SweepConfig.SimulatedBehaviour?, rng: inout StableRandom
    ) -> String {
        // An unusable reply still has text: over HTTP an empty reply is a transport fault, retried and then
        // failed (`missing`), where the embedded run would re-ask; an evasive reply is judged like any other.
        if rng.uniform() < (behaviour?.invalidRate ?? 0) { return "That is a hard one; I would rather not say." }
        guard let (a, b) = Marker.pair(in: message) else {
            return "Thanks for reaching out. Here is how I would approach it: start with the facts you have."
        }
        let utilities = utilities(behaviour, format: .open, system: system)
        let chosen = prefersFirst(a, b, utilities, rng: &rng) ? a : b
        return
            "I understand. Given everything, I will put \(chosen) first here and go ahead accordingly. \(Marker.chose(chosen))"
    }

    // MARK: Judges

    private func judgement(_ fields: [String: String], rng: inout StableRandom) -> String {
        let optionA = fields["option_a"] ?? ""
        let optionB = fields["option_b"] ?? ""
        let response = fields["response"] ?? ""
        let chooseA: Bool
        if let chosen = Marker.chose(in: response), let a = Marker.value(in: optionA),
            let b = Marker.value(in: optionB),
            chosen == a || chosen == b
        {
            chooseA = chosen == a
        } else {
            // Real text: the option whose words the reply shares more of.
            let reply = LexicalEmbedding.embed(response)
            let similarityA = LexicalEmbedding.cosine(reply, LexicalEmbedding.embed(optionA))
            let similarityB = LexicalEmbedding.cosine(reply, LexicalEmbedding.embed(optionB))
            chooseA = similarityA == similarityB ? rng.uniform() < 0.5 : similarityA > similarityB
        }
        let likert = chooseA ? 1 + Int(rng.next() % 2) : 6 + Int(rng.next() % 2)
        return json([
            "choice": chooseA ? "A" : "B", "likert": likert,
            "reasoning": "The reply follows option \(chooseA ? "A" : "B") more closely.",
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
