/// The provider's limits for one model, shared through Redis by every role and worker that calls it.
///
/// A limit of L per minute admits at most L per 60 s on average with a burst of at most half a second's worth
/// (L/120; providers allow L/60, the rest is a margin for delivery jitter), so any 60 s window holds at most
/// L + ceil(L/120). A nil or non-positive limit is not enforced.
public struct ModelRateLimit: Sendable, Equatable {
    /// "provider name/model id": the Redis keys use this, so every config model name that maps to the same
    /// provider model shares one set of limits.
    public var account: String
    /// Requests per minute.
    public var requestsPerMinute: Int?
    /// Input plus output tokens per minute.
    public var tokensPerMinute: Int?
    /// Input (prompt) tokens per minute.
    public var inputTokensPerMinute: Int?
    /// Output (completion) tokens per minute.
    public var outputTokensPerMinute: Int?

    public init(
        account: String, requestsPerMinute: Int? = nil, tokensPerMinute: Int? = nil,
        inputTokensPerMinute: Int? = nil, outputTokensPerMinute: Int? = nil
    ) {
        self.account = account
        self.requestsPerMinute = requestsPerMinute
        self.tokensPerMinute = tokensPerMinute
        self.inputTokensPerMinute = inputTokensPerMinute
        self.outputTokensPerMinute = outputTokensPerMinute
    }
}
