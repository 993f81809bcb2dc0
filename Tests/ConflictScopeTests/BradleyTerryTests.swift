import ConflictScope
import Foundation
import Testing

@Suite("Bradley-Terry fit against reference fixtures")
struct BradleyTerryFixtureTests {
    @Test func choixSmallCases() throws {
        let fixture = try Fixture.load("choix_test_cases")
        for case let testCase as [String: Any] in fixture["cases"] as? [Any] ?? [] {
            let count = try testCase.int("n_items")
            let wins = WinMatrix(count: count, comparisons: try testCase.comparisons("comparisons"))
            let computed = try testCase.object("computed")
            for (key, alpha) in [("ilsr_pairwise_alpha_0.0", 0.0), ("ilsr_pairwise_alpha_0.01", 0.01)] {
                let expected = try computed.object(key).doubles("params")
                let fit = try BradleyTerry.fit(wins, alpha: alpha)
                #expect(maxAbsDifference(fit.params, expected) < 1e-7, "\(key)")
                #expect(fit.maxGradient <= 1e-12)
            }
            let newton = try computed.doubles("newton_reference_mle")
            #expect(maxAbsDifference(try BradleyTerry.fit(wins, alpha: 0).params, newton) < 1e-10)
        }
    }

    @Test func citationsAgreeWithChoixNewtonAndPublishedEstimates() throws {
        let fixture = try Fixture.load("citations_stigler1994")
        try checkPublishedCase(fixture)
    }

    @Test func baseballAgreesWithChoixNewtonAndPublishedEstimates() throws {
        let fixture = try Fixture.load("baseball_agresti2002")
        try checkPublishedCase(fixture)
    }

    private func checkPublishedCase(_ fixture: [String: Any]) throws {
        let wins = WinMatrix(rows: try fixture.matrix("win_counts"))
        let computed = try fixture.object("computed")
        let mle = try BradleyTerry.fit(wins, alpha: 0)
        #expect(mle.maxGradient <= 1e-12)
        #expect(maxAbsDifference(mle.params, try computed.object("newton_reference_mle").doubles("params")) < 1e-10)
        #expect(maxAbsDifference(mle.params, try computed.object("ilsr_pairwise_alpha_0").doubles("params")) < 1e-7)
        let regularised = try BradleyTerry.fit(wins, alpha: 0.01)
        let choix = try computed.object("ilsr_pairwise_alpha_0.01").doubles("params")
        #expect(maxAbsDifference(regularised.params, choix) < 1e-7)
        // BradleyTerry2 codes the first item as 0.
        let items = fixture["items"] as? [String] ?? []
        let published = try fixture.object("published_reference_coded")
        let referenceCoded = mle.params.map { $0 - mle.params[0] }
        for (index, item) in items.enumerated() {
            let value = (published[item] as? NSNumber)?.doubleValue ?? .nan
            #expect(abs(referenceCoded[index] - value) < 5e-5, "\(item)")
        }
    }

    @Test func regularisedFitOfCaseWithoutMaximumLikelihood() throws {
        let fixture = try Fixture.load("choix_opt_l2_case")
        let wins = WinMatrix(count: try fixture.int("n_items"), comparisons: try fixture.comparisons("comparisons"))
        let computed = try fixture.object("computed")
        for (key, alpha) in [("ilsr_pairwise_alpha_0.01", 0.01), ("ilsr_pairwise_alpha_0.1", 0.1)] {
            let fit = try BradleyTerry.fit(wins, alpha: alpha)
            #expect(maxAbsDifference(fit.params, try computed.object(key).doubles("params")) < 1e-7, "\(key)")
        }
        #expect(throws: BradleyTerryError.self) { try BradleyTerry.fit(wins, alpha: 0) }
    }

    @Test func penaltyIsLogSoftmaxTimesAlphaN() throws {
        let fixture = try Fixture.load("regularization_and_degenerate")
        let citations = WinMatrix(rows: try Fixture.load("citations_stigler1994").matrix("win_counts"))
        let checks = try fixture.object("penalty_checks")
        for alpha in [0.01, 0.1, 1.0] {
            let check = try checks.object("citations_alpha_\(alpha)")
            let fit = try BradleyTerry.fit(citations, alpha: alpha)
            // The fixture's argmax comes from a general optimiser stopped near 1e-8; choix agrees with it to 3e-8.
            #expect(maxAbsDifference(fit.params, try check.doubles("argmax_LL_plus_a_n_sum_log_softmax")) < 1e-7)
            #expect(maxAbsDifference(fit.params, try check.doubles("ilsr")) < 1e-7)
        }
    }

    @Test func separatedCaseAtSeveralAlphas() throws {
        let fixture = try Fixture.load("separated_case")
        let wins = WinMatrix(rows: try fixture.matrix("win_counts"))
        let results = try fixture.object("results")
        for (key, alpha) in [("ilsr_alpha_0.001", 0.001), ("ilsr_alpha_0.01", 0.01), ("ilsr_alpha_0.1", 0.1)] {
            let fit = try BradleyTerry.fit(wins, alpha: alpha)
            #expect(maxAbsDifference(fit.params, try results.object(key).doubles("params")) < 1e-7, "\(key)")
        }
        #expect(throws: BradleyTerryError(reason: .neverLoses([0]))) { try BradleyTerry.fit(wins, alpha: 0) }
    }

    @Test func stronglySeparatedChain() throws {
        let fixture = try Fixture.load("warm_start")
        var wins = WinMatrix(count: 6)
        for i in 0..<6 { for j in (i + 1)..<6 { wins.add(winner: i, loser: j, times: 30) } }
        wins.add(winner: 5, loser: 0)
        for (key, alpha) in [("strongly_separated_alpha0", 0.0), ("strongly_separated_alpha0.01", 0.01)] {
            let fit = try BradleyTerry.fit(wins, alpha: alpha)
            // Printed with 8 significant digits.
            #expect(maxAbsDifference(fit.params, try fixture.object(key).doubles("params")) < 1e-6, "\(key)")
        }
    }

    @Test func degenerateInputsRaiseAtAlphaZeroAndAreFiniteAtDefault() throws {
        let degenerate = try Fixture.load("regularization_and_degenerate").object("degenerate")
        let cases: [(String, BradleyTerryError.Reason)] = [
            ("never_wins", .neverWins([2])),
            ("undefeated", .neverLoses([0])),
            ("unseen_item", .neverCompared([2])),
            ("disconnected", .disconnected([[0, 1], [2, 3]])),
        ]
        for (name, reason) in cases {
            let data = try degenerate.object("\(name)_data")
            let wins = WinMatrix(count: try data.int("n_items"), comparisons: try data.comparisons("comparisons"))
            #expect(throws: BradleyTerryError(reason: reason), "\(name)") { try BradleyTerry.fit(wins, alpha: 0) }
            let expected = try degenerate.object("\(name)_ilsr_alpha0.01").doubles("result")
            let fit = try BradleyTerry.fit(wins, alpha: 0.01)
            #expect(fit.params.allSatisfy { $0.isFinite })
            #expect(maxAbsDifference(fit.params, expected) < 1e-7, "\(name)")
        }
        let empty = WinMatrix(count: 3)
        #expect(throws: BradleyTerryError(reason: .noData)) { try BradleyTerry.fit(empty, alpha: 0) }
        #expect(try BradleyTerry.fit(empty, alpha: 0.01).params == [0, 0, 0])

        let chain = try degenerate.object("chain_data")
        let chainWins = WinMatrix(count: try chain.int("n_items"), comparisons: try chain.comparisons("comparisons"))
        for (key, alpha) in [
            ("chain_ilsr_alpha0.0001", 0.0001), ("chain_ilsr_alpha0.01", 0.01), ("chain_ilsr_alpha0.1", 0.1),
        ] {
            let fit = try BradleyTerry.fit(chainWins, alpha: alpha)
            #expect(maxAbsDifference(fit.params, try degenerate.object(key).doubles("result")) < 1e-7, "\(key)")
        }
        let single = WinMatrix(count: 2, comparisons: [(0, 1)])
        let singleFit = try BradleyTerry.fit(single, alpha: 0.01)
        #expect(
            maxAbsDifference(singleFit.params, try degenerate.object("single_ilsr_alpha0.01").doubles("result")) < 1e-7)
        let singleOfThree = WinMatrix(count: 3, comparisons: [(0, 1)])
        let singleOfThreeFit = try BradleyTerry.fit(singleOfThree, alpha: 0.01)
        #expect(
            maxAbsDifference(
                singleOfThreeFit.params, try degenerate.object("single_ilsr_alpha0.01_n3").doubles("result"))
                < 1e-7)
    }

    @Test func errorMessagesNameTheValues() {
        let error = BradleyTerryError(reason: .neverWins([1]))
        #expect(error.message(names: ["honesty", "harmlessness"]).contains("never wins: harmlessness"))
        let group = BradleyTerryError(reason: .dominantGroup([0, 2]))
        #expect(group.message(names: ["a", "b", "c"]).contains("{a, c}"))
    }
}

@Suite("Bradley-Terry closed forms and warm starts")
struct BradleyTerryPropertyTests {
    @Test(arguments: [0.0, 0.01, 0.5, 3.0])
    func threeCycleIsAllZeros(alpha: Double) throws {
        let wins = WinMatrix(count: 3, comparisons: [(0, 1), (1, 2), (2, 0)])
        let fit = try BradleyTerry.fit(wins, alpha: alpha)
        #expect(fit.params.allSatisfy { abs($0) < 1e-14 })
    }

    @Test(arguments: [(7.0, 3.0, 0.01), (1.0, 0.0, 0.01), (40.0, 55.0, 0.2), (5.0, 5.0, 0.0), (12.0, 1.0, 0.0)])
    func twoValuesClosedForm(a: Double, b: Double, alpha: Double) throws {
        var wins = WinMatrix(count: 2)
        wins[0, 1] = a
        wins[1, 0] = b
        let fit = try BradleyTerry.fit(wins, alpha: alpha)
        #expect(abs((fit.params[0] - fit.params[1]) - log((a + 2 * alpha) / (b + 2 * alpha))) < 1e-12)
    }

    @Test func dominantGroupIsNamed() {
        // 0 and 1 beat each other, and both beat 2 and 3, which beat each other: {0, 1} never loses outside.
        let wins = WinMatrix(count: 4, comparisons: [(0, 1), (1, 0), (0, 2), (1, 3), (2, 3), (3, 2)])
        #expect(throws: BradleyTerryError(reason: .dominantGroup([0, 1]))) { try BradleyTerry.fit(wins, alpha: 0) }
    }

    @Test func warmStartedRefitEqualsColdFit() throws {
        var rng = StableRandom(seed: 7)
        let truth = [1.2, 0.5, 0.0, -0.4, -0.6, -0.7]
        var wins = WinMatrix(count: truth.count)
        var previous: [Double]? = nil
        for batch in [2000, 1, 10, 100, 1000] {
            for _ in 0..<batch {
                let i = Int(rng.next() % 6)
                let j = (i + 1 + Int(rng.next() % 5)) % 6
                let iWins = rng.uniform() < BradleyTerry.probability(truth, i, beats: j)
                wins.add(winner: iWins ? i : j, loser: iWins ? j : i)
            }
            let cold = try BradleyTerry.fit(wins)
            if let previous {
                let warm = try BradleyTerry.fit(wins, start: previous)
                #expect(maxAbsDifference(warm.params, cold.params) < 1e-9)
                #expect(warm.maxGradient <= 1e-12)
            }
            previous = cold.params
        }
    }
}
