import Foundation

/// Stage 1 of a value pair, one round: one call per template (outlines by default; whole scenarios in the
/// single-stage ablation; one call with no templates in the direct one), deduplication, then a balanced
/// choice of what to keep.
struct GenerationStage {
    let runner: SweepRunner
    var config: SweepConfig { runner.config }

    struct Pair {
        var valueSet: String
        var value1: String
        var value2: String

        var id: String { "\(valueSet)/\(value1)|\(value2)" }
    }

    /// One generated candidate: an outline, or a whole scenario when there is no outline stage.
    enum Candidate {
        case outline(Outline)
        case scenario(Scenario)

        var id: String {
            switch self {
            case .outline(let outline): outline.id
            case .scenario(let scenario): scenario.id
            }
        }

        var template: ScenarioTemplate? {
            switch self {
            case .outline(let outline): outline.template
            case .scenario(let scenario): scenario.template
            }
        }

        var text: String {
            switch self {
            case .outline(let outline): outline.embeddingText
            case .scenario(let scenario): scenario.description
            }
        }
    }

    func run(_ pair: Pair, round: Int, kept keptBefore: [KeptCandidate], taskID: String, records: any SweepRecords)
        async throws -> [PipelineTask]
    {
        let candidates = try await generate(pair, round: round, taskID: taskID, records: records)
        let target = config.scenariosPerPair(for: pair.valueSet)
        let chosen = try await choose(
            candidates, kept: keptBefore, target: target, pairIndex: pairIndex(pair), taskID: taskID, records: records)
        var next: [PipelineTask] = []
        let tasks = SweepTasks(config: config)
        for candidate in candidates {
            switch candidate {
            case .outline(var outline):
                outline.kept = chosen.contains(outline.id)
                try await records.upsertOutline(outline)
                if outline.kept { next.append(.detail(outline)) }
            case .scenario(var scenario) where chosen.contains(scenario.id):
                scenario.status = config.generation.filter ? .undecided : .kept
                try await records.upsertScenario(scenario)
                next += tasks.afterDetails(scenario)
            case .scenario:
                break
            }
        }
        let kept =
            keptBefore
            + candidates.filter { chosen.contains($0.id) }.map {
                KeptCandidate(id: $0.id, template: $0.template, text: $0.text)
            }
        if kept.count < target && round + 1 < config.generation.maxRounds {
            next.append(
                .generate(
                    valueSet: pair.valueSet, value1: pair.value1, value2: pair.value2, round: round + 1, kept: kept))
        }
        return next
    }

    /// The pair's position in its set, which staggers the template order across pairs so that even one
    /// scenario per pair gives a set both act sides.
    private func pairIndex(_ pair: Pair) -> Int {
        config.valueSet(named: pair.valueSet)?.pairs.firstIndex { $0 == (pair.value1, pair.value2) } ?? 0
    }

    // MARK: Writing candidates

    private struct OutlinesAnswer: Decodable {
        struct Item: Decodable {
            var context: LooseText?
            var actionOpportunity: LooseText?
            var good: LooseText?
            var harm: LooseText?
        }
        var outlines: [Item]
    }

    private struct ScenariosAnswer: Decodable {
        var scenarios: [ScenarioDetailsStage.Answer]
    }

    private func generate(_ pair: Pair, round: Int, taskID: String, records: any SweepRecords) async throws
        -> [Candidate]
    {
        var fields = runner.definitions(pair.valueSet, pair.value1, pair.value2)
        fields["count"] = String(config.generation.outlinesPerCall)
        fields["domains"] = ScenarioDetailsStage.domainList
        let settings = SweepRunner.CallSettings(config.roles.generator)
        let prefix = "\(pair.id)/r\(round)"
        if config.generation.pipeline == .direct {
            let asked = try await runner.ask(
                .generation, settings, .direct, fields, sample: round, taskID: taskID, records: records
            ) { AnswerParsing.decode(ScenariosAnswer.self, from: $0)?.scenarios.nonEmpty }
            return (asked.value ?? []).enumerated().compactMap { position, answer in
                answer.scenario(
                    id: "s/\(prefix)/direct/\(position)", outlineID: "", pair: pair, template: nil,
                    actSide: answer.acting.flatMap { ActSide(rawValue: $0.value.trimmingCharacters(in: .whitespaces)) },
                    generatingModel: config.roles.generator.model
                ).map(Candidate.scenario)
            }
        }
        var candidates: [Candidate] = []
        for template in ScenarioTemplate.allCases {
            fields["template"] = PromptLibrary.template(template.prompt).instructions
            fields["action_roles"] = ScenarioDetailsStage.actionRoles(template)
            let callID = "\(taskID)/\(template.rawValue)"
            if config.generation.pipeline == .singleStage {
                let asked = try await runner.ask(
                    .generation, settings, .singleStage, fields, sample: round, taskID: callID, records: records
                ) { AnswerParsing.decode(ScenariosAnswer.self, from: $0)?.scenarios.nonEmpty }
                for (position, answer) in (asked.value ?? []).enumerated() {
                    if let scenario = answer.scenario(
                        id: "s/\(prefix)/\(template.rawValue)/\(position)", outlineID: "", pair: pair,
                        template: template, actSide: nil, generatingModel: config.roles.generator.model)
                    {
                        candidates.append(.scenario(scenario))
                    }
                }
                continue
            }
            let asked = try await runner.ask(
                .generation, settings, .outline, fields, sample: round, taskID: callID, records: records
            ) { raw -> [OutlinesAnswer.Item]? in
                let items = AnswerParsing.decode(OutlinesAnswer.self, from: raw)?.outlines.filter {
                    $0.context?.trimmed != nil && $0.actionOpportunity?.trimmed != nil
                }
                return items?.nonEmpty
            }
            for (position, item) in (asked.value ?? []).enumerated() {
                candidates.append(
                    .outline(
                        Outline(
                            id: "\(prefix)/\(template.rawValue)/\(position)", valueSet: pair.valueSet,
                            value1: pair.value1, value2: pair.value2, round: round, template: template,
                            context: item.context?.trimmed ?? "",
                            actionOpportunity: item.actionOpportunity?.trimmed ?? "",
                            good: item.good?.trimmed ?? "", harm: item.harm?.trimmed ?? "", kept: false)))
            }
        }
        return candidates
    }

    // MARK: Deduplication and balance

    /// The ids of the candidates to keep: not near-duplicates (cosine above the threshold) of anything kept
    /// before or of an earlier candidate of this round, and chosen so that the pair's counts per template
    /// never differ by more than one (templates interleaved; the next one is always a least-kept template).
    private func choose(
        _ candidates: [Candidate], kept: [KeptCandidate], target: Int, pairIndex: Int, taskID: String,
        records: any SweepRecords
    ) async throws -> Set<String> {
        guard kept.count < target, !candidates.isEmpty else { return [] }
        let keptVectors = try await embeddings(kept.map(\.text), taskID: taskID, records: records)
        let candidateVectors = try await embeddings(candidates.map(\.text), taskID: taskID, records: records)
        var seen = keptVectors
        var fresh: [Candidate] = []
        for (candidate, vector) in zip(candidates, candidateVectors) {
            guard !seen.contains(where: { LexicalEmbedding.cosine($0, vector) > config.generation.dedupThreshold })
            else { continue }
            seen.append(vector)
            fresh.append(candidate)
        }
        var chosen = Set<String>()
        var total = kept.count
        guard config.generation.pipeline != .direct else {
            for candidate in fresh.prefix(target - total) { chosen.insert(candidate.id) }
            return chosen
        }
        let templates = ScenarioTemplate.allCases
        let order = templates.indices.map { templates[($0 + pairIndex) % templates.count] }
        var counts = Dictionary(
            uniqueKeysWithValues: templates.map { template in
                (template, kept.filter { $0.template == template }.count)
            })
        var queues = Dictionary(grouping: fresh) { $0.template ?? .sideEffectMild }
        // Counts stay within one of each other as long as every pick is a least-kept template.
        while total < target {
            let least = counts.values.min()!
            guard let next = order.first(where: { counts[$0] == least && !(queues[$0] ?? []).isEmpty }) else { break }
            chosen.insert(queues[next]!.removeFirst().id)
            counts[next]! += 1
            total += 1
        }
        return chosen
    }

    /// Embeds texts with the configured embedder, or lexically when there is none or its call failed (the
    /// failure is in the call records).
    private func embeddings(_ texts: [String], taskID: String, records: any SweepRecords) async throws -> [[Double]] {
        guard let embedder = config.roles.embedder, !texts.isEmpty,
            let vectors = try await runner.caller.embed(
                modelName: embedder.model, texts: texts, taskID: "\(taskID)/embed", records: records)
        else { return texts.map(LexicalEmbedding.embed) }
        return vectors
    }
}

extension Array {
    /// Nil when empty (an answer with an empty list is not usable).
    var nonEmpty: Self? { isEmpty ? nil : self }
}
