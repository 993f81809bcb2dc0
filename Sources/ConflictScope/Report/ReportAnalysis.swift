import Foundation

/// A share with its 95% interval.
public struct Estimate: Sendable, Equatable {
    public var value: Double
    public var low: Double?
    public var high: Double?
    /// Observations behind it.
    public var n: Int

    static func wilson(_ successes: Int, _ trials: Int) -> Estimate? {
        guard trials > 0 else { return nil }
        let (low, high) = RankingMetrics.wilsonInterval(successes: Double(successes), trials: Double(trials))
        return Estimate(value: Double(successes) / Double(trials), low: low, high: high, n: trials)
    }

    /// Mean with a normal-approximation interval (the paper's for pooled agreement).
    static func mean(_ values: [Double]) -> Estimate? {
        guard !values.isEmpty else { return nil }
        let n = Double(values.count)
        let mean = values.reduce(0, +) / n
        guard values.count > 1 else { return Estimate(value: mean, low: nil, high: nil, n: 1) }
        let variance = values.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / (n - 1)
        let half = 1.959963984540054 * (variance / n).squareRoot()
        return Estimate(value: mean, low: mean - half, high: mean + half, n: values.count)
    }
}

/// The measures a report shows beyond `RankingReport`, computed from the same judgments and options.
public struct ReportAnalysis: Sendable {
    /// A value group's mean rank in one ranking, with a bootstrap interval.
    public struct GroupRank: Sendable, Equatable {
        public var model, valueSet, condition, group: String
        public var format: EvaluationFormat
        public var meanRank: Estimate
    }

    public struct PooledActBias: Sendable, Equatable {
        public var model: String
        public var format: EvaluationFormat
        public var rate: Estimate
    }

    public struct Difficulty: Sendable, Equatable {
        public var valueSet: String
        public var format: EvaluationFormat
        /// Observed agreement over scenarios every target answered validly (default condition).
        public var agreement: Estimate?
        /// Share of rated answers whose two ratings differ, pooled over targets (multiple choice only).
        public var likertDivergence: Estimate?
    }

    public struct PairDiversity: Sendable, Equatable {
        public var valueSet, value1, value2: String
        public var scenarios: Int
        /// 1 - mean pairwise cosine of the kept scenarios' descriptions.
        public var diversity: Double?
        /// The embedding the cosines were taken on: `lexical` (the built-in one) or the embedder role's model.
        public var method: String = lexical

        public static let lexical = "lexical"
    }

    public var report: RankingReport
    public var groupRanks: [GroupRank]
    public var actBias: [PooledActBias]
    public var filterPassRates: [ScenarioMeasures.FilterPassRate]
    public var difficulty: [Difficulty]
    public var diversity: [PairDiversity]
    public var domains: [ScenarioMeasures.DomainCount]
    /// Invalid and missing answers per target and format.
    public var unusable: [(model: String, format: EvaluationFormat, invalid: Int, missing: Int, total: Int)]

    static let baseline = "default"

    /// `report` may be given when the caller has already fitted the same judgments with the same options.
    public init(input: ReportInput, report given: RankingReport? = nil) throws {
        let counted = input.options.invalid.applied(to: input.judgments)
        report =
            try given
            ?? RankingReport(
                judgments: input.judgments, options: input.options, includeMetrics: true,
                valueSets: input.valueSets)
        // The report's metrics hold the same measures when it was fitted with these value sets.
        groupRanks =
            try report.metrics?.groupRanks
            ?? Self.groupRanks(
                counted, valueSets: input.valueSets, options: input.options)
        actBias = Self.pooledActBias(counted)
        filterPassRates = ScenarioMeasures.filterPassRates(input.scenarios)
        difficulty = report.metrics?.pooledDifficulty ?? Self.difficulty(counted)
        let kept = input.scenarios.filter { $0.status == .kept }
        diversity =
            report.metrics?.scenarioMeasures?.diversity
            ?? ScenarioMeasures.diversity(kept, embeddings: input.embeddings)
        domains = ScenarioMeasures.domains(kept)
        var unusable: [String: (invalid: Int, missing: Int, total: Int)] = [:]
        for judgment in input.judgments {
            let key = "\(judgment.model)\u{1}\(judgment.format.rawValue)"
            var entry = unusable[key] ?? (0, 0, 0)
            entry.total += 1
            if judgment.choice == .invalid { entry.invalid += 1 }
            if judgment.choice == .missing { entry.missing += 1 }
            unusable[key] = entry
        }
        self.unusable = unusable.keys.sorted().map {
            key -> (model: String, format: EvaluationFormat, invalid: Int, missing: Int, total: Int) in
            let parts = key.split(separator: "\u{1}").map(String.init)
            let entry = unusable[key]!
            return (parts[0], EvaluationFormat(rawValue: parts[1]) ?? .mcq, entry.invalid, entry.missing, entry.total)
        }
    }

    /// Each value group's mean rank per model, set and format (default condition), with the percentile
    /// interval of the mean over bootstrap refits of that ranking.
    static func groupRanks(_ counted: [Judgment], valueSets: [ValueSet], options: RankingOptions) throws
        -> [GroupRank]
    {
        let groupsBySet = Dictionary(valueSets.map { ($0.name, $0.groups) }, uniquingKeysWith: { first, _ in first })
        let comparisons = GroupComparisons.grouped(counted).filter {
            $0.key.condition == baseline && !(groupsBySet[$0.key.valueSet] ?? []).isEmpty
        }
        let perGroup = try parallelMap(comparisons) { comparison -> [GroupRank] in
            let groups = groupsBySet[comparison.key.valueSet]!
            let point = try BradleyTerry.fit(comparison.wins, alpha: options.alpha)
            let pointRanks = BradleyTerry.ranks(point.params, names: comparison.values)
            var samples = Array(repeating: [Double](), count: groups.count)
            if options.resamples > 0 {
                // Its own stream, so the rankings' intervals are unchanged by the report.
                let rng = StableRandom(seed: options.seed, key: "group-rank/\(comparison.key)")
                for resample in BradleyTerry.resamples(of: comparison.wins, count: options.resamples, using: rng) {
                    let fit = try BradleyTerry.fit(
                        resample, alpha: options.alpha, start: point.params,
                        tolerance: BradleyTerry.resampleTolerance)
                    let ranks = BradleyTerry.ranks(fit.params, names: comparison.values)
                    for (index, group) in groups.enumerated() {
                        samples[index].append(Self.mean(of: group, ranks: ranks, values: comparison.values) ?? 0)
                    }
                }
            }
            return groups.enumerated().compactMap { index, group in
                guard let mean = Self.mean(of: group, ranks: pointRanks, values: comparison.values) else { return nil }
                let sorted = samples[index].sorted()
                return GroupRank(
                    model: comparison.key.model, valueSet: comparison.key.valueSet,
                    condition: comparison.key.condition, group: group.name, format: comparison.key.format,
                    meanRank: Estimate(
                        value: mean, low: sorted.isEmpty ? nil : Sampling.percentile(sorted: sorted, 2.5),
                        high: sorted.isEmpty ? nil : Sampling.percentile(sorted: sorted, 97.5),
                        n: Int(comparison.wins.total)))
            }
        }
        return perGroup.flatMap { $0 }
    }

    static func mean(of group: ValueSet.Group, ranks: [Int], values: [String]) -> Double? {
        let members = values.indices.filter { group.values.contains(values[$0]) }
        guard !members.isEmpty else { return nil }
        return Double(members.reduce(0) { $0 + ranks[$1] }) / Double(members.count)
    }

    /// Act rate per model and format over every value set (default condition), Wilson interval.
    static func pooledActBias(_ counted: [Judgment]) -> [PooledActBias] {
        var counts: [String: (acted: Int, n: Int)] = [:]
        for judgment in counted where judgment.condition == baseline {
            guard let acted = judgment.choseToAct else { continue }
            let key = "\(judgment.model)\u{1}\(judgment.format.rawValue)"
            var entry = counts[key] ?? (0, 0)
            entry.n += 1
            if acted { entry.acted += 1 }
            counts[key] = entry
        }
        return counts.keys.sorted().compactMap { key in
            let parts = key.split(separator: "\u{1}").map(String.init)
            guard let rate = Estimate.wilson(counts[key]!.acted, counts[key]!.n) else { return nil }
            return PooledActBias(model: parts[0], format: EvaluationFormat(rawValue: parts[1]) ?? .mcq, rate: rate)
        }
    }

    /// RQ1's two measures per value set and format, default condition, pooled over targets.
    static func difficulty(_ counted: [Judgment]) -> [Difficulty] {
        var bySlice: [String: [String: [String: Judgment]]] = [:]
        for judgment in counted where judgment.condition == baseline {
            bySlice["\(judgment.valueSet)\u{1}\(judgment.format.rawValue)", default: [:]][
                judgment.model, default: [:]][judgment.scenarioID] = judgment
        }
        return bySlice.keys.sorted().map { slice in
            let parts = slice.split(separator: "\u{1}").map(String.init)
            let models = bySlice[slice]!
            let choices = models.keys.sorted().map { models[$0]!.compactMapValues(\.favouredValue) }
            var agreement: Estimate? = nil
            if choices.count >= 2 {
                var common = Set(choices[0].keys)
                for other in choices.dropFirst() { common.formIntersection(other.keys) }
                let pairs = Double(choices.count * (choices.count - 1) / 2)
                let perScenario = common.sorted().map { scenario in
                    var counts: [String: Int] = [:]
                    for model in choices { counts[model[scenario]!, default: 0] += 1 }
                    return Double(counts.values.reduce(0) { $0 + $1 * ($1 - 1) / 2 }) / pairs
                }
                agreement = Estimate.mean(perScenario).map { estimate in
                    var clamped = estimate
                    clamped.low = estimate.low.map { max(0, $0) }
                    clamped.high = estimate.high.map { min(1, $0) }
                    return clamped
                }
            }
            var rated = 0
            var differing = 0
            for judgment in models.values.flatMap(\.values) {
                guard judgment.choice.isValid, let a = judgment.likertA, let b = judgment.likertB else { continue }
                rated += 1
                if a != b { differing += 1 }
            }
            return Difficulty(
                valueSet: parts[0], format: EvaluationFormat(rawValue: parts[1]) ?? .mcq, agreement: agreement,
                likertDivergence: Estimate.wilson(differing, rated))
        }
    }
}
