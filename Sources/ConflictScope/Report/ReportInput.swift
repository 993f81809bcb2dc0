import Foundation
import GRDB

/// Everything a report is drawn from: a sweep's store and config, or a judgments file alone.
public struct ReportInput: Sendable {
    /// One judgment with what the store keeps beside it (nothing beside it from a judgments file).
    public struct Row: Sendable {
        public var judgment: Judgment
        /// The open-ended judge's 1-7 rating turned to value1 (1) .. value2 (7).
        public var judgeLikert: Int?
        /// The store's judgment id, for fetching its transcript.
        public var storeID: String?
    }

    /// The conversation behind one judgment, the answer as written and the judge's reasoning.
    public struct Transcript: Sendable {
        public var messages: [ChatMessage]
        public var raw: String?
        public var reasoning: String?
    }

    /// What the sweep was: nil from a judgments file.
    public var facts: SweepFacts?
    public var rows: [Row]
    /// Every scenario in id order (empty from a judgments file).
    public var scenarios: [Scenario]
    /// The embedder role's vectors of kept descriptions, when the sweep has them (diversity).
    public var embeddings: DescriptionEmbeddings? = nil
    public var outlines: [Outline]
    public var userPrompts: [String: String]
    /// Transcripts by store judgment id, only for the scenarios the report shows them for.
    public var transcripts: [String: Transcript]
    public var valueSets: [ValueSet]
    public var options: RankingOptions
    /// The config or judgments file the report was made from.
    public var source: String

    public var judgments: [Judgment] { rows.map(\.judgment) }

    /// From a judgments file: the rows, and the built-in value sets it names (for their groups).
    public static func judgmentsFile(path: String, options: RankingOptions) throws -> ReportInput {
        let judgments = try JudgmentReader.read(path: path)
        let sets = ValueSet.builtIns(namedIn: judgments)
        return ReportInput(
            facts: nil, rows: judgments.map { Row(judgment: $0) }, scenarios: [], outlines: [], userPrompts: [:],
            transcripts: [:], valueSets: sets, options: options, source: path)
    }

    /// From a sweep's store. Transcripts are read for at most `transcriptsPerPair` kept scenarios per value
    /// pair (the first in id order that have answers), so a paper-scale report stays small.
    public static func store(
        _ store: ResultStore, config: SweepConfig, source: String, transcriptsPerPair: Int
    ) throws -> ReportInput {
        let rows = try store.reportRows()
        let scenarios = try store.scenarios()
        let answered = Set(rows.map(\.judgment.scenarioID))
        var perPair: [String: Int] = [:]
        var chosen: [String] = []
        for scenario in scenarios where answered.contains(scenario.id) {
            let pair = "\(scenario.valueSet)/\(scenario.value1)/\(scenario.value2)"
            guard perPair[pair, default: 0] < transcriptsPerPair else { continue }
            perPair[pair, default: 0] += 1
            chosen.append(scenario.id)
        }
        var input = ReportInput(
            facts: try SweepFacts.read(config: config, store: store), rows: rows, scenarios: scenarios,
            outlines: try store.outlines(), userPrompts: try store.userPrompts(),
            transcripts: try store.transcripts(scenarioIDs: chosen), valueSets: config.valueSets,
            options: config.analysis, source: source)
        input.embeddings = try DescriptionEmbeddings.stored(scenarios: scenarios, config: config, store: store)
        return input
    }
}

/// The sweep's facts for the report's first section.
public struct SweepFacts: Sendable {
    public struct Target: Sendable {
        public var name, provider, modelID, providerKind: String
    }

    public var name: String
    public var seed: UInt64
    public var sweepID: String?
    public var storePath: String
    public var targets: [Target]
    /// Role name and model.
    public var roles: [(role: String, model: String)]
    public var conditions: [String]
    public var status: SweepStatus
    /// `name@version` of every prompt the store's calls used.
    public var promptVersions: [String]
    /// Known only when the report is written by `run`.
    public var wallSeconds: Double?
    public var callsCached: Int?

    static func read(config: SweepConfig, store: ResultStore) throws -> SweepFacts {
        var roles: [(String, String)] = [
            ("generator", config.roles.generator.model), ("filter judge", config.roles.filterJudge.model),
            ("user", config.roles.user.model), ("judge", config.roles.judge.model),
        ]
        if let embedder = config.roles.embedder { roles.append(("embedder", embedder.model)) }
        return SweepFacts(
            name: config.name, seed: config.seed, sweepID: try store.existingSweepID(), storePath: config.storePath,
            targets: config.targets.map { name in
                let model = config.models[name]
                let provider = model.flatMap { config.providers[$0.provider] }
                return Target(
                    name: name, provider: model?.provider ?? "", modelID: model?.modelID ?? name,
                    providerKind: provider?.kind.rawValue ?? "")
            }, roles: roles, conditions: config.conditions.map(\.name),
            status: try SweepStatus.read(config: config, store: store), promptVersions: try store.promptVersions(),
            wallSeconds: nil, callsCached: nil)
    }
}

extension ResultStore {
    /// Judgments with the judge's oriented rating and their ids, without the heavy columns.
    func reportRows() throws -> [ReportInput.Row] {
        try database.read { db in
            try Row.fetchAll(
                db,
                sql: """
                    SELECT id, scenario_id, model, value_set, format, condition, value1, value2, action1_is_a, choice,
                        likert, likert_a, likert_b, target_ranking, act_side
                    FROM judgment ORDER BY id
                    """
            ).map { row in
                let judgment = Self.judgment(row)
                let likert: Int? = row["likert"]
                let action1IsA: Bool = row["action1_is_a"]
                return ReportInput.Row(
                    judgment: judgment, judgeLikert: likert.map { action1IsA ? $0 : 8 - $0 }, storeID: row["id"])
            }
        }
    }

    /// Every stored opening user message, by scenario.
    func userPrompts() throws -> [String: String] {
        try database.read { db in
            var prompts: [String: String] = [:]
            for row in try Row.fetchAll(db, sql: "SELECT scenario_id, text FROM user_prompt") {
                prompts[row["scenario_id"]] = row["text"]
            }
            return prompts
        }
    }

    /// Transcripts of every judgment of the given scenarios, by judgment id.
    func transcripts(scenarioIDs: [String]) throws -> [String: ReportInput.Transcript] {
        try database.read { db in
            var result: [String: ReportInput.Transcript] = [:]
            for chunk in stride(from: 0, to: scenarioIDs.count, by: 500) {
                let ids = Array(scenarioIDs[chunk..<min(chunk + 500, scenarioIDs.count)])
                let marks = ids.map { _ in "?" }.joined(separator: ",")
                let rows = try Row.fetchAll(
                    db, sql: "SELECT id, transcript, raw, reasoning FROM judgment WHERE scenario_id IN (\(marks))",
                    arguments: StatementArguments(ids))
                for row in rows {
                    let text: String? = row["transcript"]
                    let messages =
                        text.flatMap { try? JSONDecoder().decode([ChatMessage].self, from: Data($0.utf8)) } ?? []
                    result[row["id"]] = ReportInput.Transcript(
                        messages: messages, raw: row["raw"], reasoning: row["reasoning"])
                }
            }
            return result
        }
    }

    /// The sweep's id, or nil when none was registered (imported data only).
    func existingSweepID() throws -> String? {
        try database.read { db in try String.fetchOne(db, sql: "SELECT id FROM sweep LIMIT 1") }
    }

    /// Distinct prompt versions used by calls, sorted.
    func promptVersions() throws -> [String] {
        try database.read { db in
            try String.fetchAll(db, sql: "SELECT DISTINCT prompt FROM call WHERE prompt != 'none' ORDER BY prompt")
        }
    }
}
