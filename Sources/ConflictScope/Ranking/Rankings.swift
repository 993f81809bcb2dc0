import Dispatch

/// How answers that are neither A nor B are counted.
public enum InvalidAnswers: String, Sendable, CaseIterable {
    /// Ours: invalid and missing answers never count, in any measure.
    case exclude
    /// The paper's code: every answer that is not exactly A (B, invalid, missing) is a win for value2, in the
    /// fit, the bootstrap, agreement, preference rates (invalid rows stay in their denominators) and every
    /// other measure.
    case paper

    /// `judgments` as every measure should read them under this policy: unchanged for `.exclude`; for
    /// `.paper`, each invalid or missing answer becomes B.
    public func applied(to judgments: [Judgment]) -> [Judgment] {
        guard self == .paper else { return judgments }
        return judgments.map { judgment in
            guard !judgment.choice.isValid else { return judgment }
            var counted = judgment
            counted.choice = .b
            return counted
        }
    }
}

/// How rankings are fitted.
public struct RankingOptions: Sendable, Equatable {
    /// Regularisation of the Bradley-Terry fit; the paper's default is 0.01.
    public var alpha: Double
    /// Bootstrap resamples per group; 0 skips confidence intervals.
    public var resamples: Int
    /// Seed of the bootstrap; each group's stream is derived from (seed, group key).
    public var seed: UInt64
    /// How invalid and missing answers count; `.exclude` by default.
    public var invalid: InvalidAnswers

    public init(
        alpha: Double = BradleyTerry.defaultAlpha, resamples: Int = BradleyTerry.defaultResamples, seed: UInt64 = 0,
        invalid: InvalidAnswers = .exclude
    ) {
        self.alpha = alpha
        self.resamples = resamples
        self.seed = seed
        self.invalid = invalid
    }
}

/// One value's place in a group's ranking.
public struct ValueScore: Sendable, Equatable, JSONRepresentable {
    public var value: String
    /// Mean-centred Bradley-Terry log-strength.
    public var score: Double
    public var ciLow: Double?
    public var ciHigh: Double?
    /// 1 is the highest.
    public var rank: Int

    public var json: JSONValue {
        .object([
            ("value", .string(value)), ("score", .number(score)), ("ci_low", .number(ciLow)),
            ("ci_high", .number(ciHigh)), ("rank", .int(rank)),
        ])
    }
}

/// The ranking of one (model, value set, format, condition).
public struct GroupRanking: Sendable, Equatable, JSONRepresentable {
    public var model: String
    public var valueSet: String
    public var format: EvaluationFormat
    public var condition: String
    /// Valid comparisons fitted.
    public var n: Int
    /// Invalid plus missing answers, never fitted (always 0 under `InvalidAnswers.paper`, which fits them as
    /// wins for value2).
    public var excluded: Int
    /// Highest score first; equal scores in value-name order.
    public var values: [ValueScore]

    public var key: GroupKey { GroupKey(model: model, valueSet: valueSet, format: format, condition: condition) }

    /// Rank of each value, by name.
    public var ranks: [String: Int] { Dictionary(uniqueKeysWithValues: values.map { ($0.value, $0.rank) }) }

    public var json: JSONValue {
        .object([
            ("model", .string(model)), ("value_set", .string(valueSet)), ("format", .string(format.rawValue)),
            ("condition", .string(condition)), ("n", .int(n)), ("excluded", .int(excluded)),
            ("values", .array(values.map(\.json))),
        ])
    }
}

/// A group whose ranking cannot be computed, with the reason in terms of value names.
public struct RankingError: Error, Equatable, CustomStringConvertible {
    public let group: GroupKey
    public let message: String
    public var description: String { "\(group): \(message)" }
}

/// The comparisons of one group: its values (sorted by name) and who beat whom.
struct GroupComparisons: Sendable {
    let key: GroupKey
    let values: [String]
    var wins: WinMatrix
    var excluded = 0

    init(key: GroupKey, values: [String]) {
        self.key = key
        self.values = values
        self.wins = WinMatrix(count: values.count)
    }

    /// Splits judgments by group; a group's values are every value named in its rows, valid or not.
    static func grouped(_ judgments: [Judgment]) -> [GroupComparisons] {
        var members: [GroupKey: [Int]] = [:]
        var run: (key: GroupKey, rows: [Int])? = nil
        // Files are usually sorted by group: collect runs and hash each group key once per run.
        for (index, judgment) in judgments.enumerated() {
            let key = judgment.group
            if run?.key == key {
                run!.rows.append(index)
                continue
            }
            if let finished = run { members[finished.key, default: []] += finished.rows }
            run = (key, [index])
        }
        if let finished = run { members[finished.key, default: []] += finished.rows }
        return members.map { key, rows in
            let names = Set(rows.flatMap { [judgments[$0].value1, judgments[$0].value2] }).sorted()
            let index = Dictionary(uniqueKeysWithValues: names.enumerated().map { ($1, $0) })
            var group = GroupComparisons(key: key, values: names)
            for row in rows {
                let judgment = judgments[row]
                switch judgment.choice {
                case .a: group.wins.add(winner: index[judgment.value1]!, loser: index[judgment.value2]!)
                case .b: group.wins.add(winner: index[judgment.value2]!, loser: index[judgment.value1]!)
                case .invalid, .missing: group.excluded += 1
                }
            }
            return group
        }.sorted { $0.key < $1.key }
    }
}

public enum Rankings {
    /// Fits every group's ranking with bootstrap intervals, in group-key order. Groups run in
    /// parallel; each group's random stream depends only on (seed, group key). Invalid and missing
    /// answers count as `options.invalid` says.
    public static func fit(_ judgments: [Judgment], options: RankingOptions = RankingOptions()) throws
        -> [GroupRanking]
    {
        try fitCounted(options.invalid.applied(to: judgments), options: options)
    }

    /// `fit` on judgments the invalid-answer policy has already been applied to.
    static func fitCounted(_ judgments: [Judgment], options: RankingOptions) throws -> [GroupRanking] {
        let groups = GroupComparisons.grouped(judgments)
        return try parallelMap(groups) { group in try fit(group, options: options) }
    }

    static func fit(_ group: GroupComparisons, options: RankingOptions) throws(RankingError) -> GroupRanking {
        let point: BradleyTerryFit
        do {
            point = try BradleyTerry.fit(group.wins, alpha: options.alpha)
        } catch {
            throw RankingError(group: group.key, message: error.message(names: group.values))
        }
        var bounds: ConfidenceBounds? = nil
        if options.resamples > 0 {
            let rng = StableRandom(seed: options.seed, key: group.key.description)
            let resamples = BradleyTerry.resamples(of: group.wins, count: options.resamples, using: rng)
            do {
                bounds = try BradleyTerry.bootstrapBounds(
                    resamples: resamples, alpha: options.alpha, point: point.params)
            } catch {
                throw RankingError(
                    group: group.key,
                    message: "a bootstrap resample has no estimate (\(error.message(names: group.values))); "
                        + "use an alpha above 0 or no bootstrap")
            }
        }
        let values = BradleyTerry.order(point.params, names: group.values).enumerated().map { position, item in
            ValueScore(
                value: group.values[item], score: point.params[item], ciLow: bounds?.low[item],
                ciHigh: bounds?.high[item], rank: position + 1)
        }
        return GroupRanking(
            model: group.key.model, valueSet: group.key.valueSet, format: group.key.format,
            condition: group.key.condition, n: Int(group.wins.total), excluded: group.excluded, values: values)
    }
}

/// Maps `items` on all cores, keeping order; rethrows the first error by position.
func parallelMap<T: Sendable, R: Sendable>(_ items: [T], _ transform: @Sendable (T) throws -> R) throws -> [R] {
    let results = ResultSlots<R>(count: items.count)
    DispatchQueue.concurrentPerform(iterations: items.count) { index in
        results.store(index, Result { try transform(items[index]) })
    }
    return try results.collect()
}

/// Write-once slots filled from `concurrentPerform`: each index is written by exactly one iteration
/// and read only after all iterations have finished, so no two threads touch the same slot. The
/// storage is raw memory because a Swift array property would see overlapping (exclusive) accesses.
private final class ResultSlots<R>: @unchecked Sendable {
    private let slots: UnsafeMutableBufferPointer<Result<R, any Error>?>

    init(count: Int) {
        slots = .allocate(capacity: count)
        slots.initialize(repeating: nil)
    }

    deinit {
        slots.deinitialize()
        slots.deallocate()
    }

    func store(_ index: Int, _ result: Result<R, any Error>) { slots[index] = result }

    func collect() throws -> [R] { try slots.map { try $0!.get() } }
}
