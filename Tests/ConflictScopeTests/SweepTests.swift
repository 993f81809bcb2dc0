import ConflictScope
import Foundation
import Testing

/// A small sweep on simulated models, written to a fresh temporary folder.
func smallSweepConfig(
    scenariosPerPair: Int, maxCost: Double? = nil, store: String = "results.sqlite"
) throws -> (config: SweepConfig, folder: URL) {
    try writeTemporaryConfig(
        """
        [sweep]
        name = "test"
        seed = 7
        store = "\(store)"
        value_sets = ["personal_protective"]
        scenarios_per_pair = \(scenariosPerPair)
        \(maxCost.map { "max_cost_usd = \($0)" } ?? "")

        [analysis]
        bootstrap = 200

        [providers.sim]
        kind = "simulated"
        concurrency = 16

        [models.writer]
        provider = "sim"
        input_usd_per_mtok = 1.0
        output_usd_per_mtok = 2.0

        [models.steady]
        provider = "sim"
        input_usd_per_mtok = 1.0
        output_usd_per_mtok = 2.0
        utilities.mcq = { harmlessness = 1.2, responsibility = 0.9, privacy = 0.6, compliance = 0.3, authenticity = -0.2, autonomy = -0.5, empowerment = -0.9, creativity = -1.4 }
        utilities.open = { harmlessness = 1.2, responsibility = 0.9, privacy = 0.6, compliance = 0.3, authenticity = -0.2, autonomy = -0.5, empowerment = -0.9, creativity = -1.4 }

        [models.saydo]
        provider = "sim"
        input_usd_per_mtok = 1.0
        output_usd_per_mtok = 2.0
        utilities.mcq = { harmlessness = 1.2, responsibility = 0.9, privacy = 0.6, compliance = 0.3, authenticity = -0.2, autonomy = -0.5, empowerment = -0.9, creativity = -1.4 }
        utilities.open = { autonomy = 1.3, empowerment = 1.0, creativity = 0.6, authenticity = 0.3, privacy = -0.1, responsibility = -0.5, compliance = -1.0, harmlessness = -1.3 }

        \(writerRoles)

        [targets]
        models = ["steady", "saydo"]
        """)
}

/// Kendall's tau between fitted scores and latent utilities over the value pairs whose utilities
/// differ by at least `gap` (and that `compared` admits: a cross-pair set compares values of one group
/// only through the other group); nil when no pair does.
func kendallTau(
    scores: [String: Double], latent: [String: Double], gap: Double,
    compared: (String, String) -> Bool = { _, _ in true }
) -> Double? {
    var concordant = 0
    var discordant = 0
    let values = scores.keys.sorted()
    for (i, a) in values.enumerated() {
        for b in values[(i + 1)...] where compared(a, b) {
            let difference = (latent[a] ?? 0) - (latent[b] ?? 0)
            guard abs(difference) >= gap else { continue }
            if difference * (scores[a]! - scores[b]!) > 0 { concordant += 1 } else { discordant += 1 }
        }
    }
    guard concordant + discordant > 0 else { return nil }
    return Double(concordant - discordant) / Double(concordant + discordant)
}

@Suite("Embedded sweep on simulated models", .serialized)
struct SweepTests {
    /// The repository's default sweep recovers every simulated model's latent ranking (steered
    /// utilities included) and shows the say/do model's gap.
    @Test func defaultSweepRecoversLatentRankingsAndTheSayDoGap() async throws {
        let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent()
        var config = try SweepConfig.load(path: repository.appendingPathComponent("config.toml").path, environment: [:])
        config.storePath =
            FileManager.default.temporaryDirectory
            .appendingPathComponent("default-\(UUID().uuidString).sqlite").path
        config.analysis.resamples = 100
        let summary = try await EmbeddedSweep.run(config: config)
        #expect(summary.callsFailed == 0)
        var checked = 0
        for ranking in summary.report.rankings {
            let latent = expectedUtilities(
                config, model: ranking.model, format: ranking.format,
                condition: ranking.condition, valueSet: ranking.valueSet)
            let scores = Dictionary(uniqueKeysWithValues: ranking.values.map { ($0.value, $0.score) })
            let set = config.valueSet(named: ranking.valueSet)!
            let pairs = Set(set.pairs.map { [$0.0, $0.1].sorted() })
            guard
                let tau = kendallTau(
                    scores: scores, latent: latent, gap: 0.5, compared: { pairs.contains([$0, $1].sorted()) })
            else { continue }
            checked += 1
            #expect(
                tau >= 0.9, "\(ranking.model) \(ranking.valueSet) \(ranking.format) \(ranking.condition): tau \(tau)")
        }
        #expect(checked >= 40)
        // The say/do model ranks protective values higher when asked than when acting.
        let protective: Set = ["responsibility", "harmlessness", "compliance", "privacy"]
        func meanProtectiveRank(_ format: EvaluationFormat) -> Double {
            let ranking = summary.report.rankings.first {
                $0.model == "sim-saydo" && $0.valueSet == "personal_protective" && $0.format == format
                    && $0.condition == "default"
            }!
            let ranks = ranking.values.filter { protective.contains($0.value) }.map(\.rank)
            return Double(ranks.reduce(0, +)) / Double(ranks.count)
        }
        #expect(meanProtectiveRank(.mcq) + 2 < meanProtectiveRank(.open))
    }

    /// A simulated model's utilities in a condition: shifted towards the steering ranking by its
    /// steerability, as the simulated provider does.
    private func expectedUtilities(
        _ config: SweepConfig, model: String, format: EvaluationFormat, condition: String, valueSet: String
    ) -> [String: Double] {
        let behaviour = config.models[model]!.simulated!
        var utilities = behaviour.utilities[format] ?? [:]
        guard let ranking = config.conditions.first(where: { $0.name == condition })?.targetRankings[valueSet],
            behaviour.steerability > 0
        else { return utilities }
        let steps = Double(max(ranking.count - 1, 1))
        for (index, value) in ranking.enumerated() {
            utilities[value, default: 0] += behaviour.steerability * (steps - 2 * Double(index)) / steps
        }
        return utilities.filter { config.valueSet(named: valueSet)!.valueNames.contains($0.key) }
    }

    @Test func finishedSweepRerunMakesNoCallsAndGivesIdenticalResults() async throws {
        let (config, _) = try smallSweepConfig(scenariosPerPair: 3)
        let first = try await EmbeddedSweep.run(config: config)
        #expect(first.callsMade > 0)
        let second = try await EmbeddedSweep.run(config: config)
        #expect(second.callsMade == 0)
        #expect(second.callsFailed == 0)
        #expect(second.report == first.report)
        #expect(second.sweepID == first.sweepID)
    }

    @Test func budgetStopsTheSweepAndALargerBudgetResumesWithoutPayingTwice() async throws {
        // The same sweep uninterrupted, for reference.
        let (reference, _) = try smallSweepConfig(scenariosPerPair: 3)
        let full = try await EmbeddedSweep.run(config: reference)

        let (limited, folder) = try smallSweepConfig(scenariosPerPair: 3, maxCost: full.spentUSD / 3)
        let stopped = try await EmbeddedSweep.run(config: limited)
        #expect(stopped.budgetReached)
        #expect(stopped.callsMade < full.callsMade)
        // Calls reserve their worst-case cost before starting, so the spend never passes the budget.
        #expect(stopped.spentUSD <= full.spentUSD / 3)
        #expect(stopped.spentUSD > 0)

        var raised = try SweepConfig.load(path: folder.appendingPathComponent("config.toml").path, environment: [:])
        raised.maxCostUSD = nil
        let resumed = try await EmbeddedSweep.run(config: raised)
        #expect(!resumed.budgetReached)
        #expect(stopped.callsMade + resumed.callsMade == full.callsMade)
        #expect(resumed.report == full.report)
    }

    @Test func sameConfigAndSeedGiveTheSameResultsInAnotherStore() async throws {
        let (a, _) = try smallSweepConfig(scenariosPerPair: 1)
        let (b, _) = try smallSweepConfig(scenariosPerPair: 1)
        let first = try await EmbeddedSweep.run(config: a)
        let second = try await EmbeddedSweep.run(config: b)
        #expect(first.report == second.report)
        #expect(first.sweepID != second.sweepID)
    }
}
