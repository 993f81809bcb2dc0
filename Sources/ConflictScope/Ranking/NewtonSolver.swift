import Foundation

/// Damped Newton ascent on the regularised Bradley-Terry log-likelihood (see `BradleyTerry`).
///
/// The objective is invariant to adding a constant to every parameter, so its Hessian is singular
/// along the all-ones vector while the gradient is orthogonal to it. Solving `(-H + 1 1^T) d = g`
/// gives the Newton step restricted to mean-zero directions with a positive-definite matrix.
struct NewtonSolver {
    let alpha: Double
    private let n: Int
    /// Objective, gradient and system matrix at the current point and at a trial point.
    private var current: Evaluation
    private var trial: Evaluation
    private static let maxIterations = 200

    /// A class so that accepting a trial point swaps two references; raw buffers because this is the
    /// innermost loop of the bootstrap and arrays in a class pay an exclusivity check on every access.
    private final class Evaluation {
        var value = 0.0
        var maxGradient = 0.0
        let gradient: UnsafeMutableBufferPointer<Double>
        let system: UnsafeMutableBufferPointer<Double>
        let softmax: UnsafeMutableBufferPointer<Double>

        init(n: Int) {
            gradient = .allocate(capacity: n)
            softmax = .allocate(capacity: n)
            system = .allocate(capacity: n * n)
            gradient.initialize(repeating: 0)
            softmax.initialize(repeating: 0)
            system.initialize(repeating: 0)
        }

        deinit {
            gradient.deallocate()
            softmax.deallocate()
            system.deallocate()
        }
    }

    private var step: [Double]
    private var candidate: [Double]
    /// Below this Newton decrement full steps are taken without looking at the objective: the fit is
    /// then in the region of quadratic convergence, where the objective is flat to rounding anyway.
    private static let fullStepDecrement = 1e-6

    init(count: Int, alpha: Double) {
        self.alpha = alpha
        self.n = count
        self.current = Evaluation(n: count)
        self.trial = Evaluation(n: count)
        self.step = Array(repeating: 0, count: count)
        self.candidate = Array(repeating: 0, count: count)
    }

    mutating func solve(_ wins: WinMatrix, from theta: inout [Double], tolerance: Double) throws(BradleyTerryError)
        -> BradleyTerryFit
    {
        precondition(wins.count == n && theta.count == n, "solver sized for another item count")
        // Sums of a few thousand terms cannot resolve gradients much below this; never ask for less.
        let tolerance = max(tolerance, roundingFloor(wins))
        evaluate(wins, at: theta, into: current, withValue: true)
        for iteration in 0..<Self.maxIterations {
            if current.maxGradient <= tolerance {
                return BradleyTerryFit(
                    params: BradleyTerry.centred(theta), iterations: iteration, maxGradient: current.maxGradient)
            }
            guard
                step.withUnsafeMutableBufferPointer({
                    Self.choleskySolve(current.system, current.gradient, into: $0, n: n)
                })
            else { break }
            let decrement = zip(current.gradient, step).reduce(0) { $0 + $1.0 * $1.1 }
            let checked = decrement >= Self.fullStepDecrement
            if checked && current.value.isNaN { evaluate(wins, at: theta, into: current, withValue: true) }
            // Backtrack until the objective rises enough (Armijo).
            var scale = 1.0
            while true {
                for i in 0..<n { candidate[i] = theta[i] + scale * step[i] }
                evaluate(wins, at: candidate, into: trial, withValue: checked)
                if !checked || trial.value >= current.value + 0.25 * scale * decrement || scale < 1e-12 { break }
                scale *= 0.5
            }
            swap(&theta, &candidate)
            swap(&current, &trial)
        }
        throw BradleyTerryError(
            reason: .notConverged(iterations: Self.maxIterations, maxGradient: current.maxGradient))
    }

    /// Smallest gradient that double-precision sums of these counts can resolve.
    private func roundingFloor(_ wins: WinMatrix) -> Double {
        var largestRow = 0.0
        for i in 0..<n {
            var row = 0.0
            for j in 0..<n where j != i { row += wins.games(i, j) }
            largestRow = max(largestRow, row)
        }
        return 8 * Double.ulpOfOne * (largestRow + alpha * Double(n * n))
    }

    /// Gradient and `-Hessian + 1 1^T` at `theta` in one pass (one exponential per compared pair),
    /// and the objective (log-likelihood plus penalty; one more logarithm per pair) when `withValue`,
    /// otherwise NaN.
    private func evaluate(_ wins: WinMatrix, at theta: [Double], into result: Evaluation, withValue: Bool) {
        let n = self.n
        let alpha = self.alpha
        let gradient = result.gradient
        let system = result.system
        let softmax = result.softmax
        var value = 0.0
        wins.storage.withUnsafeBufferPointer { wins in
            theta.withUnsafeBufferPointer { theta in
                gradient.update(repeating: 0)
                system.update(repeating: 1)
                for i in 0..<n {
                    for j in (i + 1)..<n {
                        let wij = wins[i * n + j]
                        let wji = wins[j * n + i]
                        let games = wij + wji
                        if games == 0 { continue }
                        // p = P(i beats j), q = 1 - p, from one exponential without overflow.
                        let x = theta[i] - theta[j]
                        let e = exp(-abs(x))
                        let larger = 1 / (1 + e)
                        let smaller = e * larger
                        let p = x >= 0 ? larger : smaller
                        let q = x >= 0 ? smaller : larger
                        if withValue {
                            // log p and log q: the likelier side is -log1p(e), the other |x| less.
                            let logLarger = -log1p(e)
                            let logP = x >= 0 ? logLarger : logLarger - abs(x)
                            let logQ = x >= 0 ? logLarger - abs(x) : logLarger
                            value += wij * logP + wji * logQ
                        }
                        let g = wij * q - wji * p
                        gradient[i] += g
                        gradient[j] -= g
                        let h = games * p * q
                        system[i * n + i] += h
                        system[j * n + j] += h
                        system[i * n + j] -= h
                        system[j * n + i] -= h
                    }
                }
                guard alpha > 0 else { return }
                let count = Double(n)
                var top = -Double.infinity
                for k in 0..<n { top = max(top, theta[k]) }
                var sum = 0.0
                var thetaSum = 0.0
                for k in 0..<n {
                    softmax[k] = exp(theta[k] - top)
                    sum += softmax[k]
                    thetaSum += theta[k]
                }
                for k in 0..<n { softmax[k] /= sum }
                let c = alpha * count
                if withValue { value += c * (thetaSum - count * (top + log(sum))) }
                for i in 0..<n {
                    let si = softmax[i]
                    gradient[i] += c * (1 - count * si)
                    system[i * n + i] += c * count * si
                    for j in 0..<n { system[i * n + j] -= c * count * si * softmax[j] }
                }
            }
        }
        result.value = withValue ? value : .nan
        result.maxGradient = gradient.reduce(0) { max($0, abs($1)) }
    }

    /// Solves `a x = b` for symmetric positive-definite `a` (overwritten by its Cholesky factor).
    static func choleskySolve(
        _ a: UnsafeMutableBufferPointer<Double>, _ b: UnsafeMutableBufferPointer<Double>,
        into x: UnsafeMutableBufferPointer<Double>, n: Int
    ) -> Bool {
        for j in 0..<n {
            var diagonal = a[j * n + j]
            for k in 0..<j { diagonal -= a[j * n + k] * a[j * n + k] }
            guard diagonal > 0, diagonal.isFinite else { return false }
            let root = diagonal.squareRoot()
            a[j * n + j] = root
            for i in (j + 1)..<n {
                var value = a[i * n + j]
                for k in 0..<j { value -= a[i * n + k] * a[j * n + k] }
                a[i * n + j] = value / root
            }
        }
        for i in 0..<n {
            var value = b[i]
            for k in 0..<i { value -= a[i * n + k] * x[k] }
            x[i] = value / a[i * n + i]
        }
        for i in stride(from: n - 1, through: 0, by: -1) {
            var value = x[i]
            for k in (i + 1)..<n { value -= a[k * n + i] * x[k] }
            x[i] = value / a[i * n + i]
        }
        return true
    }
}
