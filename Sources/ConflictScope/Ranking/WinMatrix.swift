/// Pairwise outcomes among `count` items: `self[i, j]` is the number of times item `i` beat item `j`.
///
/// Counts are stored as `Double` so that bootstrap resamples and weighted data use the same type; the
/// diagonal is always zero.
public struct WinMatrix: Sendable, Equatable {
    public let count: Int
    /// Row-major `count x count` storage; kept flat because the fit reads it in tight loops.
    public private(set) var storage: [Double]

    public init(count: Int) {
        precondition(count >= 0, "item count must not be negative")
        self.count = count
        self.storage = Array(repeating: 0, count: count * count)
    }

    /// Builds a matrix from nested rows, as the reference fixtures store it.
    public init(rows: [[Double]]) {
        self.init(count: rows.count)
        for (i, row) in rows.enumerated() {
            precondition(row.count == count, "win matrix must be square")
            for (j, wins) in row.enumerated() where i != j {
                self[i, j] = wins
            }
        }
    }

    /// Builds a matrix from (winner, loser) index pairs, as choix takes its data.
    public init(count: Int, comparisons: [(winner: Int, loser: Int)]) {
        self.init(count: count)
        for comparison in comparisons {
            add(winner: comparison.winner, loser: comparison.loser)
        }
    }

    public subscript(winner: Int, loser: Int) -> Double {
        get { storage[winner * count + loser] }
        set {
            precondition(winner != loser || newValue == 0, "an item cannot beat itself")
            storage[winner * count + loser] = newValue
        }
    }

    public mutating func add(winner: Int, loser: Int, times: Double = 1) {
        self[winner, loser] += times
    }

    /// Total number of comparisons.
    public var total: Double { storage.reduce(0, +) }

    /// Number of comparisons between `i` and `j` in either direction.
    public func games(_ i: Int, _ j: Int) -> Double { self[i, j] + self[j, i] }
}
