import ConflictScope
import Foundation
import Testing

/// Records that answer as the cluster's response cache can: another answer already stands for the key, or
/// Redis fails while the paid answer is being written. They keep the calls written to them.
private final class ScriptedRecords: SweepRecords, @unchecked Sendable {
    let standing: ModelAnswer?
    let failing: Bool
    private let calls = Locked<[ResultStore.CallRecord]>([])
    var recorded: [ResultStore.CallRecord] { calls.current }

    init(standing: ModelAnswer? = nil, failing: Bool = false) {
        self.standing = standing
        self.failing = failing
    }

    struct WriteFailed: Error {}

    func successfulResponse(key: String) async throws -> ModelAnswer? { nil }
    func record(_ call: ResultStore.CallRecord) async throws -> ModelAnswer? {
        if failing { throw WriteFailed() }
        calls.withLock { $0.append(call) }
        return call.status == "ok" ? standing ?? ModelAnswer(text: call.response ?? "") : nil
    }
    func upsertOutline(_ outline: Outline) async throws {}
    func upsertScenario(_ scenario: Scenario) async throws {}
    func upsertUserPrompt(scenarioID: String, text: String) async throws {}
    func upsertJudgment(_ record: StoredJudgment) async throws {}
}

/// A rate limiter whose shared state fails once a call is admitted: as Redis restarting during the call.
private struct UnsettlingLimiter: RateLimiter {
    struct Unreachable: Error {}
    func acquire(model: String, estimate: TokenUsage) async throws {}
    func settle(model: String, estimate: TokenUsage, actual: TokenUsage) async throws { throw Unreachable() }
    func pause(model: String, seconds: Double) async throws {}
}

/// A budget that remembers what was settled.
private actor LedgerBudget: BudgetGate {
    var reserved = 0.0
    var spent = 0.0

    func reserve(_ usd: Double) -> Bool {
        reserved += usd
        return true
    }

    func settle(reserved amount: Double, actual: Double) {
        reserved -= amount
        spent += actual
    }
}

@Suite("Recording a call")
struct CallRecordingTests {
    /// The simulated writer, priced.
    private func caller(budget: LedgerBudget, limiter: any RateLimiter = InProcessRateLimiter(limits: [:])) throws
        -> ModelCaller
    {
        let text = try repositoryConfigText()
            .replacingOccurrences(
                of: "[models.sim-writer]\nprovider = \"sim\"",
                with: "[models.sim-writer]\nprovider = \"sim\"\ninput_usd_per_mtok = 1.0\noutput_usd_per_mtok = 4.0")
        let (config, _) = try writeTemporaryConfig(text)
        return ModelCaller(
            config: config, providers: EmbeddedSweep.providers(for: config, environment: [:]),
            limiter: limiter, budget: budget)
    }

    private func ask(_ caller: ModelCaller, _ records: any SweepRecords) async throws -> ModelAnswer? {
        try await caller.chat(
            stage: .judge, modelName: "sim-writer", prompt: nil, messages: [ChatMessage(.user, "Pick A or B.")],
            temperature: 0, maxTokens: 64, sampleIndex: 0, taskID: "judge/test", records: records)
    }

    /// A duplicate of the call finished first: the pipeline goes on with that answer, not its own.
    @Test func aLateDuplicateAdoptsTheAnswerThatStands() async throws {
        let budget = LedgerBudget()
        let answer = try await ask(try caller(budget: budget), ScriptedRecords(standing: ModelAnswer(text: "earlier")))
        #expect(answer == ModelAnswer(text: "earlier"))
        #expect(await budget.spent > 0, "the duplicate was paid for")
        #expect(await abs(budget.reserved) < 1e-12)
    }

    /// Writing the answer failed after the provider answered: the call still counts as spent.
    @Test func aPaidAnswerThatCannotBeWrittenIsStillSpent() async throws {
        let budget = LedgerBudget()
        let caller = try caller(budget: budget)
        await #expect(throws: ScriptedRecords.WriteFailed.self) {
            try await ask(caller, ScriptedRecords(failing: true))
        }
        // The settle runs in a task of its own once the call has thrown.
        for _ in 0..<100 where await budget.spent == 0 { try await Task.sleep(for: .milliseconds(10)) }
        #expect(await budget.spent > 0, "the paid call was settled as free")
        #expect(await abs(budget.reserved) < 1e-12)
    }

    /// The provider answered and the rate limiter's state then failed: the paid answer is still recorded (it
    /// would otherwise be asked, and paid for, again) and the call goes on with it.
    @Test func aPaidAnswerIsRecordedWhenTheRateLimiterCannotSettle() async throws {
        let budget = LedgerBudget()
        let records = ScriptedRecords()
        let answer = try await ask(try caller(budget: budget, limiter: UnsettlingLimiter()), records)
        #expect(records.recorded.map(\.status) == ["ok"])
        #expect(answer != nil && answer?.text == records.recorded.first?.response)
        #expect(await budget.spent > 0)
    }
}
