/// Percentile confidence bounds per item.
public struct ConfidenceBounds: Sendable, Equatable {
    public var low: [Double]
    public var high: [Double]
}

extension BradleyTerry {
    /// The paper's number of bootstrap resamples.
    public static let defaultResamples = 1000
    /// Gradient tolerance for resample fits: far below the Monte Carlo noise of the bounds.
    static let resampleTolerance = 1e-10

    /// Draws `count` resamples of `wins`, each with the same total, by multinomial counts over the
    /// (winner, loser) cells. This has the distribution of resampling judgment rows with replacement.
    public static func resamples(of wins: WinMatrix, count: Int, using rng: inout StableRandom) -> [WinMatrix] {
        let cells = wins.storage.indices.filter { wins.storage[$0] > 0 }
        let weights = cells.map { wins.storage[$0] }
        let total = Int(weights.reduce(0, +))
        return (0..<count).map { _ in
            let drawn = Sampling.multinomial(trials: total, counts: weights, using: &rng)
            var resample = WinMatrix(count: wins.count)
            for (cell, times) in zip(cells, drawn) {
                resample.add(winner: cell / wins.count, loser: cell % wins.count, times: times)
            }
            return resample
        }
    }

    /// Fits every resample (warm-started from `point`) and returns the `lowPercent` / `highPercent`
    /// percentiles of each item's estimates.
    public static func bootstrapBounds(
        resamples: [WinMatrix],
        alpha: Double = defaultAlpha,
        point: [Double]? = nil,
        lowPercent: Double = 2.5,
        highPercent: Double = 97.5
    ) throws(BradleyTerryError) -> ConfidenceBounds {
        guard let first = resamples.first else { return ConfidenceBounds(low: [], high: []) }
        var estimates = Array(repeating: [Double](), count: first.count)
        for resample in resamples {
            let fit = try fit(resample, alpha: alpha, start: point, tolerance: resampleTolerance)
            for (item, value) in fit.params.enumerated() { estimates[item].append(value) }
        }
        var bounds = ConfidenceBounds(low: [], high: [])
        for values in estimates {
            let sorted = values.sorted()
            bounds.low.append(Sampling.percentile(sorted: sorted, lowPercent))
            bounds.high.append(Sampling.percentile(sorted: sorted, highPercent))
        }
        return bounds
    }
}
