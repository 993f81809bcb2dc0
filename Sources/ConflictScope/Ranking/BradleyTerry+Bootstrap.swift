/// Percentile confidence bounds per item.
public struct ConfidenceBounds: Sendable, Equatable {
    public var low: [Double]
    public var high: [Double]
}

extension BradleyTerry {
    /// The paper's number of bootstrap resamples.
    public static let defaultResamples = 1000
    /// Gradient tolerance for resample fits: parameters to ~1e-10, far below the bounds' Monte Carlo noise.
    static let resampleTolerance = 1e-8

    /// `count` resamples of `wins`, each with the same total, drawn lazily as multinomial counts over the
    /// (winner, loser) cells. This has the distribution of resampling judgment rows with replacement.
    public static func resamples(of wins: WinMatrix, count: Int, using rng: StableRandom) -> Resamples {
        Resamples(wins: wins, remaining: count, rng: rng)
    }

    public struct Resamples: Sequence, IteratorProtocol {
        private let count: Int
        private let cells: [Int]
        private let weights: [Double]
        private let total: Int
        private let logFactorials: [Double]
        private var remaining: Int
        private var rng: StableRandom

        init(wins: WinMatrix, remaining: Int, rng: StableRandom) {
            count = wins.count
            cells = wins.storage.indices.filter { wins.storage[$0] > 0 }
            weights = cells.map { wins.storage[$0] }
            total = Int(weights.reduce(0, +))
            logFactorials = Sampling.logFactorials(upTo: total)
            self.remaining = remaining
            self.rng = rng
        }

        public mutating func next() -> WinMatrix? {
            guard remaining > 0 else { return nil }
            remaining -= 1
            let drawn = Sampling.multinomial(trials: total, counts: weights, using: &rng, logFactorials: logFactorials)
            var resample = WinMatrix(count: count)
            for (cell, times) in zip(cells, drawn) {
                resample.add(winner: cell / count, loser: cell % count, times: times)
            }
            return resample
        }
    }

    /// Fits every resample (warm-started from `point`) and returns the `lowPercent` / `highPercent`
    /// percentiles of each item's estimates.
    public static func bootstrapBounds(
        resamples: some Sequence<WinMatrix>,
        alpha: Double = defaultAlpha,
        point: [Double]? = nil,
        lowPercent: Double = 2.5,
        highPercent: Double = 97.5
    ) throws(BradleyTerryError) -> ConfidenceBounds {
        var iterator = resamples.makeIterator()
        guard let first = iterator.next() else { return ConfidenceBounds(low: [], high: []) }
        var solver = NewtonSolver(count: first.count, alpha: alpha)
        var estimates = Array(repeating: [Double](), count: first.count)
        var next: WinMatrix? = first
        while let resample = next {
            let fit = try fit(resample, start: point, tolerance: resampleTolerance, solver: &solver)
            for (item, value) in fit.params.enumerated() { estimates[item].append(value) }
            next = iterator.next()
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
