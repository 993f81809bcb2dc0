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

    public init(model: String, messages: [ChatMessage], temperature: Double, maxTokens: Int, sampleIndex: Int) {
        self.model = model
        self.messages = messages
        self.temperature = temperature
        self.maxTokens = maxTokens
        self.sampleIndex = sampleIndex
    }

    /// Stable 128-bit key of everything that determines the answer (model, messages, sampling settings,
    /// sample index), as 32 hex digits: the response cache and the call records are keyed by it.
    public var cacheKey: String {
        var text = "chat\u{1}\(model)\u{1}\(temperature)\u{1}\(maxTokens)\u{1}\(sampleIndex)"
        for message in messages { text += "\u{1}\(message.role.rawValue)\u{2}\(message.content)" }
        return StableHash.hex128(text)
    }

    /// A rough token count of the prompt (4 characters a token), for budgets before the real usage is known.
    public var estimatedPromptTokens: Int { messages.reduce(0) { $0 + $1.content.utf8.count } / 4 + 8 }
}

public struct ChatResponse: Sendable, Equatable {
    public var text: String
    public var inputTokens: Int
    public var outputTokens: Int

    public init(text: String, inputTokens: Int, outputTokens: Int) {
        self.text = text
        self.inputTokens = inputTokens
        self.outputTokens = outputTokens
    }
}

/// Why a call failed for good. Descriptions never contain request headers or keys.
public struct ProviderError: Error, Equatable, CustomStringConvertible {
    public enum Kind: String, Sendable {
        case timeout, connection, rateLimited = "rate_limited", server, badRequest = "bad_request"
        case contextLength = "context_length", malformedResponse = "malformed_response"
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
    public var isRetryable: Bool { kind != .badRequest && kind != .contextLength }

    /// One line, whatever a provider put in the message.
    public var description: String { "\(kind.rawValue): \(message)".escapingLineBreaks }
}

/// A source of chat completions and embeddings: a real API, a local server, or the simulation.
public protocol LLMProvider: Sendable {
    func chat(_ request: ChatRequest) async throws(ProviderError) -> ChatResponse
    func embed(_ texts: [String], model: String) async throws(ProviderError) -> [[Double]]
}
