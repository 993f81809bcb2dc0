import ArgumentParser
import ConflictScope
import Foundation

struct RankCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "rank",
        abstract: "Fit Bradley-Terry value rankings with bootstrap intervals from a judgments file.",
        discussion: """
            Input: JSON Lines, one judgment per line with model, value_set, format (mcq | open), condition, \
            scenario_id, value1, value2 and choice (A | B | invalid | missing); optional likert_a, likert_b \
            (1-7), target_ranking (values, highest first, on steered rows) and act_side (action1 | action2: the \
            action that takes the scenario's action opportunity, for the act_bias metric). By default invalid \
            and missing answers are counted as excluded and never fitted; --invalid paper counts them as the \
            paper's code does. Use - to read standard input.
            """
    )

    @Option(name: .long, help: "Judgments file (JSON Lines), or - for standard input.")
    var judgments: String

    @Option(name: .long, help: "Regularisation of the fit (choix's alpha); 0 gives the maximum-likelihood estimate.")
    var alpha: Double = BradleyTerry.defaultAlpha

    @Option(name: .long, help: "Bootstrap resamples per group for 95% intervals; 0 skips intervals.")
    var bootstrap: Int = BradleyTerry.defaultResamples

    @Option(name: .long, help: "Seed of the bootstrap; each group's stream derives from (seed, group).")
    var seed: UInt64 = 0

    @Option(
        name: .long,
        help: ArgumentHelp(
            "How invalid and missing answers count: exclude (never counted) or paper (as the paper's code: every "
                + "answer that is not A is a win for value2, in the fit, the bootstrap and every metric).",
            valueName: "exclude|paper"))
    var invalid: InvalidAnswers = .exclude

    @Flag(
        name: .long,
        help:
            "Also compute the paper's metrics (preference rates, agreement, Likert divergence, alignment and manipulation effect, rank shifts, act bias, pooled agreement and divergence, value group mean ranks, consistency between formats)."
    )
    var metrics = false

    @Flag(name: .long, help: "Print JSON instead of tables.")
    var json = false

    func validate() throws {
        guard alpha.isFinite, alpha >= 0 else { throw ValidationError("--alpha must be a finite number >= 0") }
        guard bootstrap >= 0 else { throw ValidationError("--bootstrap must be >= 0") }
    }

    func run() throws {
        let clock = ContinuousClock()
        let started = clock.now
        let input: [Judgment]
        do {
            input = try JudgmentReader.read(path: judgments)
        } catch {
            throw CommandFailure("\(error)")
        }
        let parsed = clock.now
        let options = RankingOptions(alpha: alpha, resamples: bootstrap, seed: seed, invalid: invalid)
        let report: RankingReport
        do {
            report = try RankingReport(judgments: input, options: options, includeMetrics: metrics)
        } catch {
            throw CommandFailure("\(error)")
        }
        let fitted = clock.now
        if ProcessInfo.processInfo.environment["CONFLICTSCOPE_TIMING"] == "1" {
            func seconds(_ d: Duration) -> String {
                String(format: "%.4f", d.inSeconds)
            }
            FileHandle.standardError.write(
                Data("timing: parse_s=\(seconds(parsed - started)) fit_s=\(seconds(fitted - parsed))\n".utf8))
        }
        print(json ? report.json.serialized() + "\n" : report.table(), terminator: "")
    }
}

extension InvalidAnswers: ExpressibleByArgument {}

/// A one-line error for the user; ArgumentParser prints it as "Error: ..." and exits non-zero.
struct CommandFailure: Error, CustomStringConvertible {
    let description: String
    /// 1, or 2 when the config is not the sweep its store holds.
    let exitCode: Int32

    init(_ description: String, exitCode: Int32 = 1) {
        self.description = description
        self.exitCode = exitCode
    }

    /// `error`'s one line, with its exit code.
    init(_ error: any Error) {
        self.init("\(error)", exitCode: error is SweepMismatch ? 2 : 1)
    }
}
