import ConflictScope
import Foundation
import Testing

/// A small sweep on simulated models, written to a fresh temporary folder.
func smallSweepConfig(
    scenariosPerPair: Int, maxCost: Double? = nil, store: String = "results.sqlite"
) throws -> (config: SweepConfig, folder: URL) {
    let folder = FileManager.default.temporaryDirectory.appendingPathComponent("sweep-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
    let text = """
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

        [roles.generator]
        model = "writer"
        [roles.filter_judge]
        model = "writer"
        [roles.user]
        model = "writer"
        [roles.judge]
        model = "writer"

        [targets]
        models = ["steady", "saydo"]
        """
    let path = folder.appendingPathComponent("config.toml").path
    try text.write(toFile: path, atomically: true, encoding: .utf8)
    return (try SweepConfig.load(path: path, environment: [:]), folder)
}

/// Kendall's tau between fitted scores and latent utilities over the value pairs whose utilities
/// differ by at least `gap`.
func kendallTau(scores: [String: Double], latent: [String: Double], gap: Double) -> Double {
    var concordant = 0
    var discordant = 0
    let values = latent.keys.sorted()
    for (i, a) in values.enumerated() {
        for b in values[(i + 1)...] where abs(latent[a]! - latent[b]!) >= gap {
            if (latent[a]! - latent[b]!) * (scores[a]! - scores[b]!) > 0 { concordant += 1 } else { discordant += 1 }
        }
    }
    return Double(concordant - discordant) / Double(max(concordant + discordant, 1))
}

@Suite("Embedded sweep on simulated models", .serialized)
struct SweepTests {
    @Test func recoversLatentRankingsAndTheSayDoGap() async throws {
        let (config, _) = try smallSweepConfig(scenariosPerPair: 12)
        let summary = try await EmbeddedSweep.run(config: config)
        #expect(summary.callsFailed == 0)
        #expect(summary.scenarios.kept > 100)
        for ranking in summary.report.rankings {
            let latent = config.models[ranking.model]!.simulated!.utilities[ranking.format]!
            let scores = Dictionary(uniqueKeysWithValues: ranking.values.map { ($0.value, $0.score) })
            let tau = kendallTau(scores: scores, latent: latent, gap: 0.5)
            #expect(tau >= 0.9, "\(ranking.model) \(ranking.format): tau \(tau)")
            #expect(ranking.excluded == 0)
        }
        // The say/do model ranks protective values higher when asked than when acting.
        let protective: Set = ["responsibility", "harmlessness", "compliance", "privacy"]
        func meanProtectiveRank(_ format: EvaluationFormat) -> Double {
            let ranking = summary.report.rankings.first { $0.model == "saydo" && $0.format == format }!
            let ranks = ranking.values.filter { protective.contains($0.value) }.map(\.rank)
            return Double(ranks.reduce(0, +)) / Double(ranks.count)
        }
        #expect(meanProtectiveRank(.mcq) + 2 < meanProtectiveRank(.open))
        let shift = summary.report.metrics!.rankShifts.first { $0.model == "saydo" && $0.value == "harmlessness" }!
        #expect(shift.shift > 0)
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
