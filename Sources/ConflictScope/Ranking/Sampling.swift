import Foundation

/// A small, fast generator with a stable output for a given seed on every platform and run
/// (xoshiro256**, seeded through splitmix64). Swift's own hashing is randomised per process, so
/// anything that must be reproducible derives its seed with `StableRandom.derive`.
public struct StableRandom: RandomNumberGenerator, Sendable {
    private var s0: UInt64, s1: UInt64, s2: UInt64, s3: UInt64

    public init(seed: UInt64) {
        var x = seed
        func splitmix() -> UInt64 {
            x &+= 0x9E37_79B9_7F4A_7C15
            var z = x
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
        s0 = splitmix()
        s1 = splitmix()
        s2 = splitmix()
        s3 = splitmix()
    }

    /// A generator whose stream depends only on `seed` and `key` (for example a group or task id).
    public init(seed: UInt64, key: String) {
        self.init(seed: Self.derive(seed: seed, key: key))
    }

    /// Mixes a seed and a key with 64-bit FNV-1a, which is fixed forever, unlike `Hasher`.
    public static func derive(seed: UInt64, key: String) -> UInt64 {
        StableHash.fnv64(key, basis: StableHash.fnvOffsetBasis ^ seed)
    }

    public mutating func next() -> UInt64 {
        let result = ((s1 &* 5) << 7 | (s1 &* 5) >> 57) &* 9
        let t = s1 << 17
        s2 ^= s0
        s3 ^= s1
        s1 ^= s2
        s0 ^= s3
        s2 ^= t
        s3 = (s3 << 45) | (s3 >> 19)
        return result
    }

    /// Uniform in [0, 1) with 53 random bits.
    public mutating func uniform() -> Double {
        Double(next() >> 11) * 0x1.0p-53
    }
}

/// Exact discrete samplers for the bootstrap.
public enum Sampling {
    /// Draws from Binomial(trials, p) by inversion: from zero when the mean is small, otherwise
    /// searching outwards from the mode, so the expected cost is O(sqrt(trials p (1-p))).
    /// `logFactorials[k] = log(k!)` for k up to `trials` saves three `lgamma` calls per draw when many
    /// draws share a bound, as the cells of one resample do.
    public static func binomial(
        trials: Int, probability p: Double, using rng: inout StableRandom, logFactorials: [Double]? = nil
    ) -> Int {
        if trials <= 0 || p <= 0 { return 0 }
        if p >= 1 { return trials }
        if p > 0.5 {
            return trials - binomial(trials: trials, probability: 1 - p, using: &rng, logFactorials: logFactorials)
        }
        let q = 1 - p
        let odds = p / q
        let n = Double(trials)
        var u = rng.uniform()
        // P(k) / P(k - 1) = odds * (trials - k + 1) / k
        func ratio(_ k: Int) -> Double {
            let kd = Double(k)
            return odds * (n - kd + 1) / kd
        }
        if n * p < 30 {
            var k = 0
            var mass = pow(q, n)
            while u > mass && k < trials {
                u -= mass
                k += 1
                mass *= ratio(k)
            }
            return k
        }
        let mode = Int((n + 1) * p)
        let m = Double(mode)
        let logChoose: Double =
            if let table = logFactorials {
                table[trials] - table[mode] - table[trials - mode]
            } else {
                lgamma(n + 1) - lgamma(m + 1) - lgamma(n - m + 1)
            }
        let modeMass: Double = exp(logChoose + m * log(p) + (n - m) * log(q))
        if u < modeMass { return mode }
        u -= modeMass
        var low = mode
        var lowMass = modeMass
        var high = mode
        var highMass = modeMass
        while low > 0 || high < trials {
            if low > 0 {
                lowMass /= ratio(low)
                low -= 1
                if u < lowMass { return low }
                u -= lowMass
            }
            if high < trials {
                high += 1
                highMass *= ratio(high)
                if u < highMass { return high }
                u -= highMass
            }
        }
        return mode  // only reachable through rounding in the last ulp of the total mass
    }

    /// Draws `trials` items with replacement from cells weighted by `counts`, returning how many fell
    /// in each cell: the same distribution as resampling the underlying rows, at no cost per row.
    public static func multinomial(
        trials: Int, counts: [Double], using rng: inout StableRandom, logFactorials: [Double]? = nil
    ) -> [Double] {
        var remainingMass = counts.reduce(0, +)
        var remaining = trials
        var result = Array(repeating: 0.0, count: counts.count)
        for (cell, weight) in counts.enumerated() where remaining > 0 && weight > 0 {
            let drawn =
                weight >= remainingMass
                ? remaining
                : binomial(
                    trials: remaining, probability: weight / remainingMass, using: &rng, logFactorials: logFactorials)
            result[cell] = Double(drawn)
            remaining -= drawn
            remainingMass -= weight
        }
        return result
    }

    /// `log(k!)` for k = 0...upTo.
    public static func logFactorials(upTo count: Int) -> [Double] {
        (0...max(count, 0)).map { lgamma(Double($0) + 1) }
    }

    /// Percentile with linear interpolation between order statistics (numpy's default, Hyndman-Fan
    /// type 7). `sorted` must be ascending and non-empty; `percent` is in [0, 100].
    public static func percentile(sorted: [Double], _ percent: Double) -> Double {
        precondition(!sorted.isEmpty, "percentile of no values")
        let h = Double(sorted.count - 1) * percent / 100
        let lower = Int(h.rounded(.down))
        let upper = min(lower + 1, sorted.count - 1)
        return sorted[lower] + (h - Double(lower)) * (sorted[upper] - sorted[lower])
    }
}
