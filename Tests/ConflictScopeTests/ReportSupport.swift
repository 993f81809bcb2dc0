import ConflictScope
import Foundation

/// A small simulated sweep for the report tests: two value sets (one with groups), a steered condition,
/// a say/do model, written to a fresh temporary folder.
func reportSweepConfig(scenariosPerPair: Int = 2) throws -> (config: SweepConfig, folder: URL) {
    try writeTemporaryConfig(
        """
        [sweep]
        name = "report-test"
        seed = 11
        store = "results.sqlite"
        value_sets = ["hhh", "personal_protective"]
        scenarios_per_pair = { hhh = \(scenariosPerPair * 3), personal_protective = \(scenariosPerPair) }

        [analysis]
        bootstrap = 100

        [conditions.default]

        [conditions.steered]
        target_ranking.hhh = ["honesty", "harmlessness", "helpfulness"]
        target_ranking.personal_protective = [
            "privacy", "autonomy", "responsibility", "authenticity", "harmlessness", "empowerment", "compliance",
            "creativity",
        ]

        [providers.sim]
        kind = "simulated"
        concurrency = 16

        [models.writer]
        provider = "sim"
        input_usd_per_mtok = 1.0
        output_usd_per_mtok = 2.0

        [models.steady]
        provider = "sim"
        input_usd_per_mtok = 1.0
        output_usd_per_mtok = 2.0
        utilities.mcq = { harmlessness = 1.2, responsibility = 0.9, privacy = 0.6, compliance = 0.3, authenticity = -0.2, autonomy = -0.5, empowerment = -0.9, creativity = -1.4, honesty = 1.0, helpfulness = -0.5 }
        utilities.open = { harmlessness = 1.2, responsibility = 0.9, privacy = 0.6, compliance = 0.3, authenticity = -0.2, autonomy = -0.5, empowerment = -0.9, creativity = -1.4, honesty = 1.0, helpfulness = -0.5 }

        [models.saydo]
        provider = "sim"
        input_usd_per_mtok = 1.0
        output_usd_per_mtok = 2.0
        steerability = 1.0
        utilities.mcq = { harmlessness = 1.2, responsibility = 0.9, privacy = 0.6, compliance = 0.3, authenticity = -0.2, autonomy = -0.5, empowerment = -0.9, creativity = -1.4, honesty = 0.5, helpfulness = -0.5 }
        utilities.open = { autonomy = 1.3, empowerment = 1.0, creativity = 0.6, authenticity = 0.3, privacy = -0.1, responsibility = -0.5, compliance = -1.0, harmlessness = -1.3, helpfulness = 1.0, honesty = -0.2 }

        \(writerRoles)

        [targets]
        models = ["steady", "saydo"]
        """)
}

/// One finished report sweep shared by the report tests (the sweep is the slow part).
actor ReportSweep {
    static let shared = ReportSweep()
    private var done: (config: SweepConfig, folder: URL, summary: EmbeddedSweep.Summary)?

    func get() async throws -> (config: SweepConfig, folder: URL, summary: EmbeddedSweep.Summary) {
        if let done { return done }
        let (config, folder) = try reportSweepConfig()
        let summary = try await EmbeddedSweep.run(config: config)
        done = (config, folder, summary)
        return done!
    }
}

/// The `<svg>...</svg>` elements of a page, in order.
func svgElements(_ html: String) -> [String] {
    html.components(separatedBy: "<svg").dropFirst().map { "<svg" + ($0.components(separatedBy: "</svg>").first ?? "") }
}

/// The attributes of every `class="mark"` group in one chart.
func chartMarks(_ svg: String) -> [[String: String]] {
    svg.components(separatedBy: "<g class=\"mark\"").dropFirst().map { chunk in
        let tag = chunk.prefix { $0 != ">" }
        var attributes: [String: String] = [:]
        let parts = tag.components(separatedBy: "\"")
        var index = 0
        while index + 1 < parts.count {
            let key = parts[index].trimmingCharacters(in: .whitespaces).trimmingCharacters(in: ["="])
            attributes[key] = parts[index + 1]
                .replacingOccurrences(of: "&amp;", with: "&").replacingOccurrences(of: "&quot;", with: "\"")
                .replacingOccurrences(of: "&#39;", with: "'").replacingOccurrences(of: "&lt;", with: "<")
                .replacingOccurrences(of: "&gt;", with: ">")
            index += 2
        }
        return attributes
    }
}

/// Whether an svg element holds a drawn mark: a circle, line, rect or path inside a `mark` group.
func hasDrawing(_ svg: String) -> Bool {
    svg.components(separatedBy: "<g class=\"mark\"").dropFirst().contains { chunk in
        ["<circle", "<line", "<rect", "<path"].contains { chunk.contains($0) }
    }
}

/// `value` as the report writes numbers into data attributes.
func reportNumber(_ value: Double) -> Double { (value * 1000).rounded() / 1000 }
