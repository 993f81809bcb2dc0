import Foundation

/// How consistent one model is between what it says (multiple choice) and what it does (open-ended), on
/// one value set and condition: Kendall's tau between the two rankings, and the share of scenarios answered
/// validly in both formats whose two choices favour the same value.
public struct FormatConsistency: Sendable, Equatable, JSONRepresentable {
    public var model, valueSet, condition: String
    /// Values ranked in both formats.
    public var values: Int
    /// Kendall's tau-b between the multiple-choice and open-ended ranks; nil with fewer than two values.
    public var kendallTau: Double?
    /// Share of common valid scenarios whose choices agree, with a Wilson 95% interval; `n` is the scenarios.
    public var scenarioAgreement: Estimate?

    public var json: JSONValue {
        .object([
            ("model", .string(model)), ("value_set", .string(valueSet)), ("condition", .string(condition)),
            ("values", .int(values)), ("kendall_tau", .number(kendallTau)),
            ("scenarios", .int(scenarioAgreement?.n ?? 0)), ("agreement", .number(scenarioAgreement?.value)),
            ("ci_low", .number(scenarioAgreement?.low)), ("ci_high", .number(scenarioAgreement?.high)),
        ])
    }
}

extension FormatConsistency {
    /// Kendall's tau-b between two rankings over the items both rank: (concordant - discordant) pairs over
    /// sqrt of the pairs untied in each ranking; nil with fewer than two common items or when one ranking
    /// ties every pair.
    public static func kendallTau(_ first: [String: Int], _ second: [String: Int]) -> Double? {
        let items = first.keys.filter { second[$0] != nil }.sorted()
        guard items.count >= 2 else { return nil }
        var concordant = 0
        var discordant = 0
        var untiedFirst = 0
        var untiedSecond = 0
        for i in items.indices {
            for j in items.indices where j > i {
                let a = first[items[i]]! - first[items[j]]!
                let b = second[items[i]]! - second[items[j]]!
                if a != 0 { untiedFirst += 1 }
                if b != 0 { untiedSecond += 1 }
                if a * b > 0 { concordant += 1 }
                if a * b < 0 { discordant += 1 }
            }
        }
        guard untiedFirst > 0, untiedSecond > 0 else { return nil }
        return Double(concordant - discordant) / (Double(untiedFirst) * Double(untiedSecond)).squareRoot()
    }

    /// One entry per (model, value set, condition) ranked in both formats. `byGroup` holds each group's
    /// judgments (the invalid-answer policy applied) by scenario id.
    static func all(rankings: [GroupRanking], byGroup: [GroupKey: [String: Judgment]]) -> [FormatConsistency] {
        let rankingByKey = Dictionary(uniqueKeysWithValues: rankings.map { ($0.key, $0) })
        return rankings.filter { $0.format == .mcq }.compactMap { mcq in
            var openKey = mcq.key
            openKey.format = .open
            guard let open = rankingByKey[openKey] else { return nil }
            let mcqChoices = (byGroup[mcq.key] ?? [:]).compactMapValues(\.favouredValue)
            let openChoices = (byGroup[openKey] ?? [:]).compactMapValues(\.favouredValue)
            let common = mcqChoices.keys.filter { openChoices[$0] != nil }
            let same = common.filter { mcqChoices[$0] == openChoices[$0] }.count
            return FormatConsistency(
                model: mcq.model, valueSet: mcq.valueSet, condition: mcq.condition,
                values: Set(mcq.ranks.keys).intersection(open.ranks.keys).count,
                kendallTau: kendallTau(mcq.ranks, open.ranks), scenarioAgreement: Estimate.wilson(same, common.count))
        }
    }
}

/// The measures that need a sweep's store (its scenarios), not only judgments: filter pass rate per check,
/// diversity per value pair, kept scenarios per domain and the rankings per domain.
public struct ScenarioMeasures: Sendable, Equatable, JSONRepresentable {
    public struct FilterPassRate: Sendable, Equatable {
        public var check: FilterCheckName
        /// Share of scenarios with a verdict on the check that passed it (Wilson 95%); nil when none has one.
        public var rate: Estimate?
    }

    public struct DomainCount: Sendable, Equatable {
        public var domain: String
        public var scenarios: Int
    }

    /// A group's ranking fitted on the judgments of one domain's scenarios only.
    public struct DomainRanking: Sendable, Equatable {
        public var domain: String
        public var ranking: GroupRanking
    }

    /// Scenarios without a domain label (or judgments whose scenario is not in the store).
    public static let unlabelled = "unlabelled"

    public var filterPassRates: [FilterPassRate]
    public var diversity: [ReportAnalysis.PairDiversity]
    public var domains: [DomainCount]
    public var domainRankings: [DomainRanking]

    /// `counted`: judgments the invalid-answer policy has already been applied to.
    init(scenarios: [Scenario], counted: [Judgment], options: RankingOptions, embeddings: DescriptionEmbeddings?)
        throws
    {
        let kept = scenarios.filter { $0.status == .kept }
        filterPassRates = Self.filterPassRates(scenarios)
        diversity = Self.diversity(kept, embeddings: embeddings)
        domains = Self.domains(kept)
        domainRankings = try Self.domainRankings(scenarios: scenarios, counted: counted, options: options)
    }

    static func filterPassRates(_ scenarios: [Scenario]) -> [FilterPassRate] {
        FilterCheckName.allCases.map { check in
            var passed = 0
            var decided = 0
            for scenario in scenarios {
                guard let pass = scenario.checks?[check]?.pass else { continue }
                decided += 1
                if pass { passed += 1 }
            }
            return FilterPassRate(check: check, rate: Estimate.wilson(passed, decided))
        }
    }

    /// Kept scenarios per domain, most first (ties by name).
    static func domains(_ kept: [Scenario]) -> [DomainCount] {
        var domains: [String: Int] = [:]
        for scenario in kept { domains[scenario.domain?.rawValue ?? unlabelled, default: 0] += 1 }
        return domains.sorted { ($1.value, $0.key) < ($0.value, $1.key) }.map {
            DomainCount(domain: $0.key, scenarios: $0.value)
        }
    }

    /// Diversity of the kept scenarios' descriptions per value pair: 1 - mean pairwise cosine of their
    /// embeddings: the embedder role's `embeddings` for the pairs they cover, the lexical embedding for the rest,
    /// each pair labelled with the one it used.
    public static func diversity(_ kept: [Scenario], embeddings: DescriptionEmbeddings? = nil)
        -> [ReportAnalysis.PairDiversity]
    {
        let pairs = DescriptionEmbeddings.byPair(kept)
        return
            (try? parallelMap(pairs) { scenarios -> ReportAnalysis.PairDiversity in
                let embedded = scenarios.compactMap { embeddings?.vectors[$0.id] }
                let (vectors, method) =
                    embedded.count == scenarios.count && !scenarios.isEmpty
                    ? (embedded, embeddings!.model)
                    : (scenarios.map { LexicalEmbedding.embed($0.description) }, ReportAnalysis.PairDiversity.lexical)
                var total = 0.0
                var pairs = 0
                for i in vectors.indices {
                    for j in vectors.indices where j > i {
                        total += LexicalEmbedding.cosine(vectors[i], vectors[j])
                        pairs += 1
                    }
                }
                return ReportAnalysis.PairDiversity(
                    valueSet: scenarios[0].valueSet, value1: scenarios[0].value1, value2: scenarios[0].value2,
                    scenarios: scenarios.count, diversity: pairs > 0 ? 1 - total / Double(pairs) : nil,
                    method: method)
            }) ?? []
    }

    /// Every group's ranking on each domain's judgments, in (domain, group) order: point estimates, since
    /// bootstrapping every group in every domain would cost a dozen times the sweep's own rankings. A group
    /// whose judgments in a domain have no estimate (possible with `alpha` 0) is left out of that domain.
    static func domainRankings(scenarios: [Scenario], counted: [Judgment], options: RankingOptions) throws
        -> [DomainRanking]
    {
        var pointEstimates = options
        pointEstimates.resamples = 0
        let options = pointEstimates
        var domainOf: [String: String] = [:]
        for scenario in scenarios { domainOf[scenario.id] = scenario.domain?.rawValue ?? unlabelled }
        var byDomain: [String: [Judgment]] = [:]
        for judgment in counted { byDomain[domainOf[judgment.scenarioID] ?? unlabelled, default: []].append(judgment) }
        let work = byDomain.keys.sorted().flatMap { domain in
            GroupComparisons.grouped(byDomain[domain]!).map { (domain: domain, group: $0) }
        }
        return try parallelMap(work) { item -> DomainRanking? in
            (try? Rankings.fit(item.group, options: options)).map { DomainRanking(domain: item.domain, ranking: $0) }
        }.compactMap { $0 }
    }

    public var json: JSONValue {
        .object([
            (
                "filter_pass_rates",
                .array(
                    filterPassRates.map { entry in
                        .object([("check", .string(entry.check.rawValue))] + Estimate.fields(entry.rate, name: "rate"))
                    })
            ),
            ("diversity", .array(diversity.map(\.json))),
            (
                "domains",
                .array(
                    domains.map { .object([("domain", .string($0.domain)), ("scenarios", .int($0.scenarios))]) })
            ),
            (
                "domain_rankings",
                .array(
                    domainRankings.map { entry in
                        guard case .object(let fields) = entry.ranking.json else { return entry.ranking.json }
                        return .object([("domain", .string(entry.domain))] + fields)
                    })
            ),
        ])
    }
}

extension Estimate {
    /// `name`, `ci_low`, `ci_high` and `n` fields (nulls and 0 when there is no estimate).
    static func fields(_ estimate: Estimate?, name: String) -> [(String, JSONValue)] {
        [
            (name, .number(estimate?.value)), ("ci_low", .number(estimate?.low)),
            ("ci_high", .number(estimate?.high)), ("n", .int(estimate?.n ?? 0)),
        ]
    }

    /// `{"value", "ci_low", "ci_high", "n"}`, or null.
    static func json(_ estimate: Estimate?) -> JSONValue {
        estimate == nil ? .null : .object(fields(estimate, name: "value"))
    }
}

extension ReportAnalysis.GroupRank: JSONRepresentable {
    public var json: JSONValue {
        .object(
            [
                ("model", .string(model)), ("value_set", .string(valueSet)), ("format", .string(format.rawValue)),
                ("condition", .string(condition)), ("group", .string(group)),
            ] + Estimate.fields(meanRank, name: "mean_rank"))
    }
}

extension ReportAnalysis.Difficulty: JSONRepresentable {
    public var json: JSONValue {
        .object([
            ("value_set", .string(valueSet)), ("format", .string(format.rawValue)),
            ("condition", .string(ReportAnalysis.baseline)), ("observed_agreement", Estimate.json(agreement)),
            ("likert_divergence", Estimate.json(likertDivergence)),
        ])
    }
}

extension ReportAnalysis.PairDiversity: JSONRepresentable {
    public var json: JSONValue {
        .object([
            ("value_set", .string(valueSet)), ("value1", .string(value1)), ("value2", .string(value2)),
            ("scenarios", .int(scenarios)), ("diversity", .number(diversity)), ("method", .string(method)),
        ])
    }
}

extension ValueSet {
    /// The built-in value sets that judgments name (their groups define `group_ranks` from a judgments file).
    static func builtIns(namedIn judgments: [Judgment]) -> [ValueSet] {
        let names = Set(judgments.map(\.valueSet))
        return builtInNames.filter(names.contains).compactMap { try? builtIn($0) }
    }
}
