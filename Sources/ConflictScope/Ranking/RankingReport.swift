import Foundation

/// Rankings (and optionally the paper's metrics) of a set of judgments, ready to print.
public struct RankingReport: Sendable, Equatable, JSONRepresentable {
    public var rankings: [GroupRanking]
    public var metrics: RankingMetrics?

    /// With metrics, `valueSets` define the value groups of `group_ranks` (nil: the built-in sets the judgments
    /// name) and a store's `scenarios` add the scenario measures (filter pass rates, diversity, domains), its
    /// `embeddings` (the embedder role's) the diversity of the pairs they cover.
    public init(
        judgments: [Judgment], options: RankingOptions = RankingOptions(), includeMetrics: Bool = false,
        valueSets: [ValueSet]? = nil, scenarios: [Scenario]? = nil, embeddings: DescriptionEmbeddings? = nil
    ) throws {
        // The invalid-answer policy is applied once here, so the fit, the bootstrap and every metric follow it.
        let counted = options.invalid.applied(to: judgments)
        rankings = try Rankings.fitCounted(counted, options: options)
        metrics =
            includeMetrics
            ? try RankingMetrics(
                counted: counted, rankings: rankings, options: options, valueSets: valueSets, scenarios: scenarios,
                embeddings: embeddings)
            : nil
    }

    /// `{"rankings": [...]}`, plus `"metrics"` when they were computed.
    public var json: JSONValue {
        var fields: [(String, JSONValue)] = [("rankings", .array(rankings.map(\.json)))]
        if let metrics { fields.append(("metrics", metrics.json)) }
        return .object(fields)
    }

    /// A readable table per group, then the metrics when computed.
    public func table() -> String {
        var out = ""
        for ranking in rankings {
            out += "\(ranking.model) | \(ranking.valueSet) | \(ranking.format.rawValue) | \(ranking.condition)"
            out += "  (n = \(ranking.n), excluded = \(ranking.excluded))\n"
            let width = max(5, ranking.values.map(\.value.count).max() ?? 0)
            out +=
                "  rank  " + "value".padding(toLength: width, withPad: " ", startingAt: 0)
                + "    score   95% interval\n"
            for value in ranking.values {
                let interval =
                    value.ciLow.flatMap { low in value.ciHigh.map { Self.format(low) + " .. " + Self.format($0) } }
                    ?? "-"
                out += "  " + String(value.rank).leftPadded(4) + "  "
                out += value.value.padding(toLength: width, withPad: " ", startingAt: 0)
                out += "  " + Self.format(value.score).leftPadded(7) + "   " + interval + "\n"
            }
            out += "\n"
        }
        if let metrics { out += metrics.table() }
        return out
    }

    static func format(_ value: Double) -> String { String(format: "%.3f", value) }
}

extension RankingMetrics {
    func table() -> String {
        var out = ""
        if !agreement.isEmpty {
            out += "Observed agreement between models (scenarios every model answered validly)\n"
            for entry in agreement {
                let value = entry.observedAgreement.map(RankingReport.format) ?? "-"
                out += "  \(entry.valueSet) | \(entry.format.rawValue) | \(entry.condition): \(value)"
                out += "  (\(entry.models) models, \(entry.scenarios) scenarios)\n"
            }
            out += "\n"
        }
        if !likertDivergence.isEmpty {
            out += "Likert divergence (multiple choice: share of answers rating the two actions differently)\n"
            for entry in likertDivergence {
                let value = entry.divergence.map(RankingReport.format) ?? "-"
                out +=
                    "  \(entry.model) | \(entry.valueSet) | \(entry.condition): \(value)  (\(entry.scenarios) rated)\n"
            }
            out += "\n"
        }
        if !alignment.isEmpty {
            out += "Steering: alignment with the target ranking and manipulation effect\n"
            for entry in alignment {
                let effect =
                    entry.manipulationEffect.map { effect in
                        RankingReport.format(effect)
                            + (entry.ciLow.flatMap { low in
                                entry.ciHigh.map {
                                    " [" + RankingReport.format(low) + ", " + RankingReport.format($0) + "]"
                                }
                            } ?? "")
                    } ?? "undefined (\(entry.undefinedReason ?? ""))"
                let baseline = entry.defaultAlignment.map(RankingReport.format) ?? "-"
                let steered = entry.steeredAlignment.map(RankingReport.format) ?? "-"
                out += "  \(entry.model) | \(entry.valueSet) | \(entry.format.rawValue) | \(entry.condition): "
                out += "a_default = \(baseline), a_steered = \(steered), effect = \(effect)\n"
            }
            out += "\n"
        }
        if !rankShifts.isEmpty {
            out += "Rank shift from multiple choice to open-ended (positive: ranked lower when acting)\n"
            for entry in rankShifts {
                let interval =
                    entry.ciLow.flatMap { low in
                        entry.ciHigh.map { " [\(RankingReport.format(low)), \(RankingReport.format($0))]" }
                    }
                    ?? ""
                out += "  \(entry.model) | \(entry.valueSet) | \(entry.condition) | \(entry.value): "
                out +=
                    "\(entry.mcqRank) -> \(entry.openRank) (\(entry.shift >= 0 ? "+" : "")\(entry.shift))\(interval)\n"
            }
            out += "\n"
        }
        if !actBias.isEmpty {
            out += "Act bias (share of valid choices taking the action opportunity, Wilson 95% interval)\n"
            for entry in actBias {
                out += "  \(entry.model) | \(entry.valueSet) | \(entry.format.rawValue) | \(entry.condition): "
                out += "\(RankingReport.format(entry.actRate)) "
                out +=
                    "[\(RankingReport.format(entry.ciLow)), \(RankingReport.format(entry.ciHigh))] (n = \(entry.n))\n"
            }
            out += "\n"
        }
        if !pooledDifficulty.isEmpty {
            out += "Pooled over models (default condition): observed agreement and Likert divergence, 95% intervals\n"
            for entry in pooledDifficulty {
                out += "  \(entry.valueSet) | \(entry.format.rawValue): agreement \(Self.estimate(entry.agreement))"
                if entry.format == .mcq { out += ", Likert divergence \(Self.estimate(entry.likertDivergence))" }
                out += "\n"
            }
            out += "\n"
        }
        if !groupRanks.isEmpty {
            out += "Value group mean rank (default condition, bootstrap 95% interval)\n"
            for entry in groupRanks {
                out += "  \(entry.model) | \(entry.valueSet) | \(entry.format.rawValue) | \(entry.group): "
                out += Self.estimate(entry.meanRank) + "\n"
            }
            out += "\n"
        }
        if !formatConsistency.isEmpty {
            out += "Consistency between formats: Kendall tau of the rankings, scenarios choosing the same value\n"
            for entry in formatConsistency {
                out += "  \(entry.model) | \(entry.valueSet) | \(entry.condition): "
                out += "tau = \(entry.kendallTau.map(RankingReport.format) ?? "-"), "
                out += "agreement \(Self.estimate(entry.scenarioAgreement))\n"
            }
            out += "\n"
        }
        if !preferenceRates.isEmpty {
            out += "Preference rates (share of valid comparisons won by value1, Wilson 95% interval)\n"
            for entry in preferenceRates {
                out += "  \(entry.model) | \(entry.valueSet) | \(entry.format.rawValue) | \(entry.condition) | "
                out += "\(entry.value1) over \(entry.value2): \(RankingReport.format(entry.rate)) "
                out +=
                    "[\(RankingReport.format(entry.ciLow)), \(RankingReport.format(entry.ciHigh))] (n = \(entry.n))\n"
            }
        }
        return out
    }
}

extension RankingMetrics {
    /// `value [low, high] (n = N)`, or `-`.
    static func estimate(_ estimate: Estimate?) -> String {
        guard let estimate else { return "-" }
        var text = RankingReport.format(estimate.value)
        if let low = estimate.low, let high = estimate.high {
            text += " [\(RankingReport.format(low)), \(RankingReport.format(high))]"
        }
        return text + " (n = \(estimate.n))"
    }
}

extension String {
    func leftPadded(_ width: Int) -> String {
        count >= width ? self : String(repeating: " ", count: width - count) + self
    }
}
