import Foundation

/// Damped Newton ascent on the regularised Bradley-Terry log-likelihood (see `BradleyTerry`).
///
/// The objective is invariant to adding a constant to every parameter, so its Hessian is singular
/// along the all-ones vector while the gradient is orthogonal to it. Solving `(-H + 1 1^T) d = g`
/// gives the Newton step restricted to mean-zero directions with a positive-definite matrix.
struct NewtonSolver {
    let wins: WinMatrix
    let alpha: Double
    private let n: Int
    private var gradient: [Double]
    private var system: [Double]
    private static let maxIterations = 200

    init(wins: WinMatrix, alpha: Double) {
        self.wins = wins
        self.alpha = alpha
        self.n = wins.count
        self.gradient = Array(repeating: 0, count: wins.count)
        self.system = Array(repeating: 0, count: wins.count * wins.count)
    }

    mutating func solve(from theta: inout [Double], tolerance: Double) throws(BradleyTerryError) -> BradleyTerryFit {
        // Sums of a few thousand terms cannot resolve gradients much below this; never ask for less.
        let tolerance = max(tolerance, roundingFloor())
        var value = objective(theta)
        var step = Array(repeating: 0.0, count: n)
        var candidate = theta
        for iteration in 0..<Self.maxIterations {
            let maxGradient = evaluateDerivatives(at: theta)
            if maxGradient <= tolerance {
                return BradleyTerryFit(
                    params: BradleyTerry.centred(theta), iterations: iteration, maxGradient: maxGradient)
            }
            guard Self.choleskySolve(&system, gradient, into: &step, n: n) else { break }
            let decrement = zip(gradient, step).reduce(0) { $0 + $1.0 * $1.1 }
            var scale = 1.0
            while true {
                for i in 0..<n { candidate[i] = theta[i] + scale * step[i] }
                // Close to the optimum full steps are safe and the objective is flat to rounding.
                if decrement < 1e-8 { break }
                let candidateValue = objective(candidate)
                if candidateValue >= value + 0.25 * scale * decrement || scale < 1e-12 {
                    value = candidateValue
                    break
                }
                scale *= 0.5
            }
            swap(&theta, &candidate)
            if decrement < 1e-8 { value = objective(theta) }
        }
        let maxGradient = evaluateDerivatives(at: theta)
        throw BradleyTerryError(reason: .notConverged(iterations: Self.maxIterations, maxGradient: maxGradient))
    }

    /// Smallest gradient that double-precision sums of these counts can resolve.
    private func roundingFloor() -> Double {
        var largestRow = 0.0
        for i in 0..<n {
            var row = 0.0
            for j in 0..<n where j != i { row += wins.games(i, j) }
            largestRow = max(largestRow, row)
        }
        return 8 * Double.ulpOfOne * (largestRow + alpha * Double(n * n))
    }

    /// Log-likelihood plus penalty.
    func objective(_ theta: [Double]) -> Double {
        var total = 0.0
        for i in 0..<n {
            for j in (i + 1)..<n {
                let x = theta[i] - theta[j]
                total += wins[i, j] * Self.logSigmoid(x) + wins[j, i] * Self.logSigmoid(-x)
            }
        }
        if alpha > 0 {
            let top = theta.max() ?? 0
            let logSumExp = top + log(theta.reduce(0) { $0 + exp($1 - top) })
            let count = Double(n)
            total += alpha * count * (theta.reduce(0, +) - count * logSumExp)
        }
        return total
    }

    /// Fills `gradient` and `system` (= -Hessian + 1 1^T); returns max |gradient|.
    private mutating func evaluateDerivatives(at theta: [Double]) -> Double {
        for k in 0..<n { gradient[k] = 0 }
        for k in 0..<(n * n) { system[k] = 1 }
        for i in 0..<n {
            for j in (i + 1)..<n {
                let wij = wins[i, j]
                let wji = wins[j, i]
                let games = wij + wji
                if games == 0 { continue }
                let x = theta[i] - theta[j]
                let p = 1 / (1 + exp(-x))
                let q = 1 / (1 + exp(x))
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
        if alpha > 0 {
            let count = Double(n)
            let top = theta.max() ?? 0
            let weights = theta.map { exp($0 - top) }
            let sum = weights.reduce(0, +)
            let c = alpha * count
            for i in 0..<n {
                let si = weights[i] / sum
                gradient[i] += c * (1 - count * si)
                for j in 0..<n {
                    let sj = weights[j] / sum
                    system[i * n + j] += c * count * ((i == j ? si : 0) - si * sj)
                }
            }
        }
        return gradient.reduce(0) { max($0, abs($1)) }
    }

    /// log(sigmoid(x)) without overflow.
    static func logSigmoid(_ x: Double) -> Double {
        x >= 0 ? -log1p(exp(-x)) : x - log1p(exp(x))
    }

    /// Solves `a x = b` for symmetric positive-definite `a` (overwritten by its Cholesky factor).
    static func choleskySolve(_ a: inout [Double], _ b: [Double], into x: inout [Double], n: Int) -> Bool {
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
