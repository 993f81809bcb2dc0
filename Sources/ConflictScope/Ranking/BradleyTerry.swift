import Foundation

/// Bradley-Terry fit regularised exactly as choix's `ilsr_pairwise(n, comparisons, alpha)`.
///
/// The estimate is the maximiser of `LL(theta) + alpha * n * sum_i log softmax(theta)_i`, where
/// `P(i beats j) = 1 / (1 + exp(theta_j - theta_i))` and `n` is the number of items; the result is
/// centred to mean 0. We solve it with damped Newton steps, which converge quadratically and reach
/// a gradient of 1e-12 in a handful of iterations for the sizes we see (at most a dozen values).
public enum BradleyTerry {
    /// The paper's regularisation strength.
    public static let defaultAlpha = 0.01
    /// Gradient tolerance of reported (final) fits.
    public static let finalTolerance = 1e-12

    /// Fits log-strengths to `wins`.
    ///
    /// - Parameters:
    ///   - alpha: regularisation; 0 gives the maximum-likelihood estimate and then degenerate data
    ///     (a value that never wins or never loses, disconnected comparisons, no data) throws.
    ///   - start: previous parameters for a warm start (any centring); `nil` starts from zeros.
    ///   - tolerance: stop once `max |gradient| <= tolerance`.
    public static func fit(
        _ wins: WinMatrix,
        alpha: Double = defaultAlpha,
        start: [Double]? = nil,
        tolerance: Double = finalTolerance
    ) throws(BradleyTerryError) -> BradleyTerryFit {
        var solver = NewtonSolver(count: wins.count, alpha: alpha)
        return try fit(wins, start: start, tolerance: tolerance, solver: &solver)
    }

    /// `fit` with a solver (and its buffers) reused across many fits of the same size.
    static func fit(_ wins: WinMatrix, start: [Double]?, tolerance: Double, solver: inout NewtonSolver)
        throws(BradleyTerryError) -> BradleyTerryFit
    {
        precondition(solver.alpha >= 0 && solver.alpha.isFinite, "alpha must be finite and non-negative")
        let n = wins.count
        if n <= 1 {
            return BradleyTerryFit(params: Array(repeating: 0, count: n), iterations: 0, maxGradient: 0)
        }
        if solver.alpha == 0, let reason = Degeneracy.check(wins) {
            throw BradleyTerryError(reason: reason)
        }
        var theta = start.map(centred) ?? Array(repeating: 0, count: n)
        precondition(theta.count == n, "warm start has the wrong number of items")
        return try solver.solve(wins, from: &theta, tolerance: tolerance)
    }

    /// P(i beats j) under log-strengths `theta`.
    public static func probability(_ theta: [Double], _ i: Int, beats j: Int) -> Double {
        1 / (1 + exp(theta[j] - theta[i]))
    }

    /// Item indices from the highest score to the lowest; equal scores in name order.
    public static func order(_ params: [Double], names: [String]) -> [Int] {
        params.indices.sorted { a, b in params[a] != params[b] ? params[a] > params[b] : names[a] < names[b] }
    }

    /// 1-based rank of each item (1 = highest), indexed like `params`.
    public static func ranks(_ params: [Double], names: [String]) -> [Int] {
        var result = Array(repeating: 0, count: params.count)
        for (position, item) in order(params, names: names).enumerated() { result[item] = position + 1 }
        return result
    }

    public static func centred(_ theta: [Double]) -> [Double] {
        let mean = theta.reduce(0, +) / Double(max(theta.count, 1))
        return theta.map { $0 - mean }
    }
}

public struct BradleyTerryFit: Sendable, Equatable {
    /// Log-strengths, centred to mean 0.
    public var params: [Double]
    /// Newton iterations taken.
    public var iterations: Int
    /// `max |gradient|` of the objective at `params`.
    public var maxGradient: Double
}

/// Why a Bradley-Terry fit has no answer. Items are indices; `message(names:)` names them.
public struct BradleyTerryError: Error, Sendable, Equatable {
    public enum Reason: Sendable, Equatable {
        case noData
        case neverCompared([Int])
        case disconnected([[Int]])
        case neverWins([Int])
        case neverLoses([Int])
        /// A group of items that never loses against the items outside it.
        case dominantGroup([Int])
        case notConverged(iterations: Int, maxGradient: Double)
    }

    public let reason: Reason

    public init(reason: Reason) { self.reason = reason }

    public func message(names: [String]) -> String {
        func list(_ items: [Int]) -> String {
            items.map { $0 < names.count ? names[$0] : "#\($0)" }.joined(separator: ", ")
        }
        let noEstimate = "no maximum-likelihood estimate at alpha 0"
        switch reason {
        case .noData:
            return "\(noEstimate): there are no valid comparisons"
        case .neverCompared(let items):
            return "\(noEstimate): never compared: \(list(items))"
        case .disconnected(let parts):
            let groups = parts.map { "{\(list($0))}" }.joined(separator: " ")
            return "\(noEstimate): comparisons fall into disconnected groups \(groups)"
        case .neverWins(let items):
            return "\(noEstimate): never wins: \(list(items))"
        case .neverLoses(let items):
            return "\(noEstimate): never loses: \(list(items))"
        case .dominantGroup(let items):
            return "\(noEstimate): never loses to any value outside the group {\(list(items))}"
        case .notConverged(let iterations, let gradient):
            return "fit did not converge after \(iterations) iterations (max gradient \(gradient))"
        }
    }
}

/// The maximum-likelihood estimate exists exactly when the directed "beat" graph is strongly connected.
enum Degeneracy {
    static func check(_ wins: WinMatrix) -> BradleyTerryError.Reason? {
        let n = wins.count
        if wins.total == 0 { return .noData }
        let items = Array(0..<n)
        let unseen = items.filter { i in items.allSatisfy { wins.games(i, $0) == 0 } }
        if !unseen.isEmpty { return .neverCompared(unseen) }
        let parts = components(count: n) { i, j in wins.games(i, j) > 0 }
        if parts.count > 1 { return .disconnected(parts) }
        let neverWins = items.filter { i in items.allSatisfy { wins[i, $0] == 0 } }
        if !neverWins.isEmpty { return .neverWins(neverWins) }
        let neverLoses = items.filter { i in items.allSatisfy { wins[$0, i] == 0 } }
        if !neverLoses.isEmpty { return .neverLoses(neverLoses) }
        // Otherwise name a strongly connected group that no outside value ever beats.
        let reach = items.map { reachable(from: $0, count: n) { i, j in wins[i, j] > 0 } }
        for i in items {
            let group = items.filter { reach[i].contains($0) && reach[$0].contains(i) }
            if group.count == n { return nil }
            let beatenFromOutside = group.contains { c in items.contains { !group.contains($0) && wins[$0, c] > 0 } }
            if !beatenFromOutside { return .dominantGroup(group) }
        }
        return nil
    }

    /// Items reachable from `start` following `edge(i, j)`.
    static func reachable(from start: Int, count: Int, edge: (Int, Int) -> Bool) -> Set<Int> {
        var seen: Set<Int> = [start]
        var stack = [start]
        while let i = stack.popLast() {
            for j in 0..<count where !seen.contains(j) && edge(i, j) {
                seen.insert(j)
                stack.append(j)
            }
        }
        return seen
    }

    /// Connected components of the undirected graph `linked`, each sorted, in order of their first item.
    static func components(count: Int, linked: (Int, Int) -> Bool) -> [[Int]] {
        var assigned = Set<Int>()
        var parts: [[Int]] = []
        for i in 0..<count where !assigned.contains(i) {
            let part = reachable(from: i, count: count, edge: linked)
            assigned.formUnion(part)
            parts.append(part.sorted())
        }
        return parts
    }
}
