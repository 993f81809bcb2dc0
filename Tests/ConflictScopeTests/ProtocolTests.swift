import ConflictScope
import Foundation
import Testing

/// A sweep of one value set on simulated models, with extra model tables and config lines.
func protocolSweepConfig(
    valueSet: String = "hhh", scenariosPerPair: Int, models: String, targets: [String], extra: String = ""
) throws -> (config: SweepConfig, folder: URL) {
    try writeTemporaryConfig(
        """
        [sweep]
        name = "protocol"
        seed = 11
        store = "results.sqlite"
        value_sets = ["\(valueSet)"]
        scenarios_per_pair = \(scenariosPerPair)

        [generation]
        outlines_per_call = 6
        max_rounds = 6

        [analysis]
        bootstrap = 200

        \(extra)

        [providers.sim]
        kind = "simulated"
        concurrency = 32

        [models.writer]
        provider = "sim"

        \(models)

        \(writerRoles)

        [targets]
        models = [\(targets.map { "\"\($0)\"" }.joined(separator: ", "))]
        """)
}

@Suite("The paper's protocol on simulated models", .serialized)
struct ProtocolTests {
    /// Both causal structures are generated in equal shares within every pair, so the act side is
    /// balanced and every kept scenario records its template and act side.
    @Test func templatesAndActSidesAreBalancedWithinEveryPair() async throws {
        let (config, _) = try protocolSweepConfig(
            valueSet: "personal_protective", scenariosPerPair: 6, models: "[models.t]\nprovider = \"sim\"",
            targets: ["t"])
        _ = try await EmbeddedSweep.run(config: config)
        let store = try ResultStore(path: config.storePath)
        let kept = try store.outlines().filter(\.kept)
        for (pair, outlines) in Dictionary(grouping: kept, by: { "\($0.value1)|\($0.value2)" }) {
            let counts = ScenarioTemplate.allCases.map { template in outlines.filter { $0.template == template }.count }
            #expect(outlines.count == 6, "\(pair)")
            #expect(counts.max()! - counts.min()! <= 1, "\(pair): \(counts)")
        }
        let scenarios = try store.scenarios()
        #expect(scenarios.allSatisfy { $0.template != nil && $0.actSide == $0.template?.actSide })
        let keptScenarios = scenarios.filter { $0.status == .kept }
        let actingFirst = keptScenarios.filter { $0.actSide == .action1 }.count
        let share = Double(actingFirst) / Double(keptScenarios.count)
        #expect(share >= 0.35 && share <= 0.65, "\(share)")
        // Seven filter checks, each with its verdict and raw answer.
        let checked = try #require(scenarios.first { $0.checks != nil })
        #expect(Set(checked.checks!.keys) == Set(FilterCheckName.allCases))
        #expect(checked.checks!.values.allSatisfy { $0.raw != nil })
    }

    /// One scenario per pair still gives a set both act sides: the template order is staggered by pair.
    @Test func oneScenarioPerPairStillUsesBothStructures() async throws {
        let (config, _) = try protocolSweepConfig(
            valueSet: "personal_protective", scenariosPerPair: 1, models: "[models.t]\nprovider = \"sim\"",
            targets: ["t"])
        _ = try await EmbeddedSweep.run(config: config)
        let kept = try ResultStore(path: config.storePath).outlines().filter(\.kept)
        #expect(kept.count == 16)
        let sideEffect = kept.filter { $0.template.isSideEffect }.count
        #expect(sideEffect == 8, "\(sideEffect) of 16")
    }

    /// The confound the two causal structures remove: a target with no value preferences but a bias to
    /// act ranks flat, with an act rate near sigmoid(2) in every group; counted on side-effect scenarios
    /// alone (where acting always serves value1) the same answers give a spurious ranking.
    @Test func anActBiasAloneRanksFlat() async throws {
        let (config, _) = try protocolSweepConfig(
            valueSet: "hhh", scenariosPerPair: 40,
            models: """
                [models.actor]
                provider = "sim"
                act_bias = 2.0
                """, targets: ["actor"])
        let summary = try await EmbeddedSweep.run(config: config)
        let judgments = try ResultStore(path: config.storePath).judgments()
        let expected = 1 / (1 + exp(-2.0))
        for (group, rows) in Dictionary(grouping: judgments, by: \.group) {
            let valid = rows.filter { $0.choice.isValid && $0.actSide != nil }
            let acted = valid.filter { ($0.choice == .a) == ($0.actSide == .action1) }.count
            let rate = Double(acted) / Double(valid.count)
            #expect(abs(rate - expected) < 0.07, "\(group): act rate \(rate)")
        }
        var values = 0
        var containingZero = 0
        for ranking in summary.report.rankings {
            for value in ranking.values {
                values += 1
                #expect(abs(value.score) <= 1.0, "\(ranking.key) \(value.value): \(value.score)")
                if let low = value.ciLow, let high = value.ciHigh, low <= 0, high >= 0 { containingZero += 1 }
            }
        }
        #expect(values > 0 && Double(containingZero) >= 0.8 * Double(values), "\(containingZero) of \(values)")

        let sideEffectOnly = judgments.filter { $0.actSide == .action1 }
        let spurious = try RankingReport(judgments: sideEffectOnly, options: config.analysis)
        for ranking in spurious.rankings {
            let spread = (ranking.values.map(\.score).max() ?? 0) - (ranking.values.map(\.score).min() ?? 0)
            #expect(spread > 2.0, "\(ranking.key): spread \(spread)")
        }
    }

    /// The filter off keeps every scenario whose stage 2 succeeded; the single-stage and direct
    /// ablations write scenarios without an outline stage.
    @Test(arguments: ["two_stage", "single_stage", "direct"])
    func ablationsRunToTheEnd(_ pipeline: String) async throws {
        let (config, _) = try protocolSweepConfig(
            scenariosPerPair: 4, models: "[models.t]\nprovider = \"sim\"", targets: ["t"])
        var ablated = config
        ablated.generation.pipeline = SweepConfig.Pipeline(rawValue: pipeline)!
        ablated.generation.filter = false
        let summary = try await EmbeddedSweep.run(config: ablated)
        let scenarios = try ResultStore(path: ablated.storePath).scenarios()
        #expect(scenarios.count == 12)
        #expect(scenarios.allSatisfy { $0.status == .kept && $0.checks == nil })
        #expect(summary.scenarios.kept == 12)
        #expect(try ResultStore(path: ablated.storePath).outlines().isEmpty == (pipeline != "two_stage"))
        if pipeline != "direct" {
            #expect(scenarios.allSatisfy { $0.template != nil })
        }
        #expect(scenarios.allSatisfy { $0.actSide != nil })
    }
}
