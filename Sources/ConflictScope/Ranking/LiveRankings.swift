/// Rankings kept current while judgments arrive (the cluster's aggregator). Judgments are held by
/// id, so one delivered twice counts once, and each refit starts from the group's previous fit.
/// These are progress figures: final rankings are cold fits with bootstrap (`RankingReport`).
public struct LiveRankings: Sendable {
    private var judgments: [String: Judgment] = [:]
    private var previous: [GroupKey: (values: [String], params: [Double])] = [:]
    private let alpha: Double
    private let invalid: InvalidAnswers
    /// Refits done so far.
    public private(set) var refits = 0

    public init(alpha: Double, invalid: InvalidAnswers = .exclude) {
        self.alpha = alpha
        self.invalid = invalid
    }

    /// Adds or replaces the judgment with this id.
    public mutating func upsert(id: String, _ judgment: Judgment) { judgments[id] = judgment }

    public var judgmentCount: Int { judgments.count }

    /// Refits every group (warm-started, to a looser tolerance than final fits) and returns the
    /// rankings with `comparisons`, the valid comparisons they count.
    public mutating func refit() -> (rankings: [GroupRanking], comparisons: Int) {
        refits += 1
        var rankings: [GroupRanking] = []
        var comparisons = 0
        for group in GroupComparisons.grouped(invalid.applied(to: Array(judgments.values))) {
            let last = previous[group.key]
            let start = last?.values == group.values ? last?.params : nil
            // A group that cannot be fitted yet (too little data at alpha 0) waits for more judgments.
            guard let fit = try? BradleyTerry.fit(group.wins, alpha: alpha, start: start, tolerance: 1e-9) else {
                continue
            }
            previous[group.key] = (group.values, fit.params)
            comparisons += Int(group.wins.total)
            let values = BradleyTerry.order(fit.params, names: group.values).enumerated().map { position, item in
                ValueScore(
                    value: group.values[item], score: fit.params[item], ciLow: nil, ciHigh: nil, rank: position + 1)
            }
            rankings.append(
                GroupRanking(
                    model: group.key.model, valueSet: group.key.valueSet, format: group.key.format,
                    condition: group.key.condition, n: Int(group.wins.total), excluded: group.excluded,
                    values: values))
        }
        return (rankings.sorted { $0.key < $1.key }, comparisons)
    }
}
