/// One chat message.
public struct ChatMessage: Sendable, Equatable, Hashable, Codable {
    public enum Role: String, Sendable, Codable { case system, user, assistant }
    public var role: Role
    public var content: String

    public init(_ role: Role, _ content: String) {
        self.role = role
        self.content = content
    }
}

/// A chat-completion request, the same for every provider kind.
public struct ChatRequest: Sendable, Equatable {
    /// The provider's model id.
    public var model: String
    public var messages: [ChatMessage]
    public var temperature: Double
    public var maxTokens: Int
    /// Deliberate re-sampling (another generation round, a re-ask after unparseable output) uses a new
    /// index: simulated models mix it into their seed, real providers get it as `seed` where supported.
    public var sampleIndex: Int
    /// How an OpenAI-format request bounds the answer, and whether it is a reasoning model's (no
    /// temperature but the default, an optional effort).
    public var contract = OpenAIContract()

    public init(
        model: String, messages: [ChatMessage], temperature: Double, maxTokens: Int, sampleIndex: Int,
        contract: OpenAIContract = OpenAIContract()
    ) {
        self.model = model
        self.messages = messages
        self.temperature = temperature
        self.maxTokens = maxTokens
        self.sampleIndex = sampleIndex
        self.contract = contract
    }

    /// Stable 128-bit key of everything that determines the answer (model, messages, sampling settings,
    /// sample index), as 32 hex digits: the response cache and the call records are keyed by it.
    public var cacheKey: String {
        var text = "chat\u{1}\(model)\u{1}\(temperature)\u{1}\(maxTokens)\u{1}\(sampleIndex)"
        for message in messages { text += "\u{1}\(message.role.rawValue)\u{2}\(message.content)" }
        // Only what changes the answer, and only when it differs from the default: earlier keys stay valid.
        if contract.reasoning { text += "\u{1}reasoning" }
        if let effort = contract.reasoningEffort { text += "\u{1}effort=\(effort)" }
        return StableHash.hex128(text)
    }

    /// A rough token count of the prompt (4 characters a token), for budgets before the real usage is known.
    public var estimatedPromptTokens: Int { messages.reduce(0) { $0 + $1.content.utf8.count } / 4 + 8 }
}

/// The parts of OpenAI's chat contract that differ between models.
public struct OpenAIContract: Sendable, Equatable, Hashable {
    public enum TokenParameter: String, Sendable, CaseIterable {
        case maxTokens = "max_tokens", maxCompletionTokens = "max_completion_tokens"
    }

    /// OpenAI's o-series and gpt-5 reasoning models: no temperature but the default.
    public var reasoning = false
    /// `max_tokens`, or `max_completion_tokens` (reasoning models; compatible servers ignore it).
    public var tokenParameter = TokenParameter.maxTokens
    /// `reasoning_effort`, sent when set.
    public var reasoningEffort: String?

    public init(reasoning: Bool = false, tokenParameter: TokenParameter = .maxTokens, reasoningEffort: String? = nil) {
        self.reasoning = reasoning
        self.tokenParameter = tokenParameter
        self.reasoningEffort = reasoningEffort
    }
}

public struct ChatResponse: Sendable, Equatable {
    public var text: String
    public var inputTokens: Int
    public var outputTokens: Int
    /// The answer was cut off at the token limit (OpenAI `finish_reason: length`, Anthropic
    /// `stop_reason: max_tokens`): never used, re-asked like an unparseable one.
    public var truncated: Bool

    public init(text: String, inputTokens: Int, outputTokens: Int, truncated: Bool = false) {
        self.text = text
        self.inputTokens = inputTokens
        self.outputTokens = outputTokens
        self.truncated = truncated
    }
}

/// Why a call failed for good. Descriptions never contain request headers or keys.
public struct ProviderError: Error, Equatable, CustomStringConvertible {
    public enum Kind: String, Sendable {
        case timeout, connection, rateLimited = "rate_limited", server, badRequest = "bad_request"
        case contextLength = "context_length", malformedResponse = "malformed_response"
        /// 401, 403 and an exhausted quota: no call to this provider can succeed.
        case unauthorized
        /// The model does not exist at this endpoint (404, `model_not_found`).
        case modelNotFound = "model_not_found"
        /// A parameter the model refuses (`unsupported_parameter`, `unsupported_value`).
        case unsupportedParameter = "unsupported_parameter"
    }

    public var kind: Kind
    public var message: String
    /// Seconds the provider asked us to wait (429 / 503 Retry-After).
    public var retryAfter: Double?

    public init(_ kind: Kind, _ message: String, retryAfter: Double? = nil) {
        self.kind = kind
        self.message = message
        self.retryAfter = retryAfter
    }

    /// Worth another attempt: everything but a request the provider will always refuse.
    public var isRetryable: Bool { !isFatal && kind != .badRequest && kind != .contextLength }

    /// Every call to this model would fail the same way: the sweep stops rather than fill with failures.
    public var isFatal: Bool { kind == .unauthorized || kind == .modelNotFound || kind == .unsupportedParameter }

    /// The network, not the provider's answer: what the circuit breaker counts.
    public var isTransport: Bool { kind == .connection || kind == .timeout }

    /// One line, whatever a provider put in the message.
    public var description: String { "\(kind.rawValue): \(message)".escapingLineBreaks }
}

/// A source of chat completions and embeddings: a real API, a local server, or the simulation.
public protocol LLMProvider: Sendable {
    func chat(_ request: ChatRequest) async throws(ProviderError) -> ChatResponse
    func embed(_ texts: [String], model: String) async throws(ProviderError) -> [[Double]]
}
