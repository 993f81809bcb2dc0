import ConflictScope
import Foundation

/// The two wire formats the server speaks: request parsing, answers and error bodies.
enum SimWire: Sendable {
    case openAI, anthropic

    /// A request the server could not accept, answered with `status` and the format's error body.
    struct Rejection: Error {
        var status: Int
        var type: String
        var message: String
    }

    /// A chat request in this format. The sample index is the `seed` field (OpenAI's; the Anthropic client
    /// sends none, so there it is 0).
    func chatRequest(_ body: Data) throws(Rejection) -> ChatRequest {
        switch self {
        case .openAI:
            guard let request = WireJSON.decode(OpenAIWire.ChatRequest.self, body) else {
                throw Self.invalid("the body is not a chat completions request (model and messages are required)")
            }
            var messages: [ChatMessage] = []
            for message in request.messages {
                let role: ChatMessage.Role
                switch message.role {
                case "system", "developer": role = .system
                case "user": role = .user
                case "assistant": role = .assistant
                default: throw Self.invalid("unknown message role \"\(message.role)\"")
                }
                messages.append(ChatMessage(role, message.content ?? ""))
            }
            return try Self.validated(
                ChatRequest(
                    model: request.model, messages: messages, temperature: request.temperature ?? 1,
                    maxTokens: max(1, request.maxTokens ?? request.maxCompletionTokens ?? SimServer.defaultMaxTokens),
                    sampleIndex: request.seed ?? 0))
        case .anthropic:
            guard let request = WireJSON.decode(AnthropicWire.MessagesRequest.self, body) else {
                throw Self.invalid(
                    "the body is not a Messages API request (model, max_tokens and messages are required)")
            }
            var messages: [ChatMessage] = request.system.map { [ChatMessage(.system, $0)] } ?? []
            for message in request.messages {
                guard let role = ChatMessage.Role(rawValue: message.role), role != .system else {
                    throw Self.invalid("unknown message role \"\(message.role)\"")
                }
                messages.append(ChatMessage(role, message.content))
            }
            return try Self.validated(
                ChatRequest(
                    model: request.model, messages: messages, temperature: request.temperature ?? 1,
                    maxTokens: max(1, request.maxTokens), sampleIndex: 0))
        }
    }

    private static func validated(_ request: ChatRequest) throws(Rejection) -> ChatRequest {
        guard !request.model.isEmpty else { throw invalid("model is required") }
        guard request.messages.contains(where: { $0.role != .system }) else {
            throw invalid("messages must be a non-empty list")
        }
        return request
    }

    private static func invalid(_ message: String) -> Rejection {
        Rejection(status: 400, type: "invalid_request_error", message: message)
    }

    /// An embeddings request: the model and its inputs (a string or a list of strings).
    static func embeddingsRequest(_ body: Data) throws(Rejection) -> (model: String, inputs: [String]) {
        guard let request = WireJSON.decode(OpenAIWire.EmbeddingsRequest.self, body), !request.model.isEmpty,
            !request.input.isEmpty
        else { throw invalid("model is required, and input must be a string or a list of strings") }
        return (request.model, request.input)
    }

    func chatBody(_ request: ChatRequest, key: String, text: String, input: Int, output: Int) -> Data {
        switch self {
        case .openAI:
            WireJSON.encode(
                OpenAIWire.ChatCompletion(
                    id: "chatcmpl-\(key.prefix(24))", created: Int(Date().timeIntervalSince1970), model: request.model,
                    choices: [
                        OpenAIWire.Choice(message: .init(role: "assistant", content: text), finishReason: "stop")
                    ], usage: .init(promptTokens: input, completionTokens: output)))
        case .anthropic:
            WireJSON.encode(
                AnthropicWire.MessagesResponse(
                    id: "msg_\(key.prefix(24))", model: request.model, text: text, stopReason: "end_turn",
                    usage: .init(inputTokens: input, outputTokens: output)))
        }
    }

    static func embeddingsBody(model: String, vectors: [[Double]], tokens: Int) -> Data {
        // Not a number is not JSON; the simulation never makes one, but a body must stay valid.
        let finite = vectors.map { $0.map { $0.isFinite ? $0 : 0 } }
        return WireJSON.encode(OpenAIWire.Embeddings(model: model, vectors: finite, tokens: tokens))
    }

    /// The format's error body.
    func errorBody(type: String, message: String) -> Data {
        switch self {
        case .openAI:
            let rateLimited = type == "rate_limit_error"
            return WireJSON.encode(
                OpenAIWire.ErrorBody(
                    message: message, type: rateLimited ? "requests" : type,
                    code: rateLimited ? "rate_limit_exceeded" : nil))
        case .anthropic:
            return WireJSON.encode(AnthropicWire.ErrorBody(type: type, message: message))
        }
    }

    /// A 200 body whose answer is empty.
    func emptyBody(model: String) -> Data {
        switch self {
        case .openAI:
            WireJSON.encode(
                OpenAIWire.ChatCompletion(
                    id: "chatcmpl-empty", model: model,
                    choices: [OpenAIWire.Choice(message: .init(role: "assistant", content: ""), finishReason: "stop")],
                    usage: .init(promptTokens: 0, completionTokens: 0)))
        case .anthropic:
            WireJSON.encode(
                AnthropicWire.MessagesResponse(
                    id: "msg_empty", model: model, text: nil, stopReason: "end_turn",
                    usage: .init(inputTokens: 0, outputTokens: 0)))
        }
    }

    /// A 200 body cut off in the middle, as a proxy that dropped the connection might leave it.
    static let malformedBody = Data(#"{"id": "cut-off", "choices": [{"index": 0, "message": {"role": "assi"#.utf8)
}
