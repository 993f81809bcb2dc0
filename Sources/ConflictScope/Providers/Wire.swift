import Foundation

/// The two wire formats every provider speaks, as `Codable` types: OpenAI's chat completions and
/// embeddings (also served by vLLM, llama.cpp, Ollama and hosted routers) and Anthropic's Messages API.
/// The HTTP client, the simulator server and the tests' fake providers all read and write these, so
/// the three cannot drift apart.
public enum OpenAIWire {
    /// `POST /chat/completions`. Reasoning models take `max_completion_tokens` and no temperature;
    /// everything else takes `max_tokens`.
    public struct ChatRequest: Codable, Sendable, Equatable {
        public var model: String
        public var messages: [Message]
        public var temperature: Double?
        public var maxTokens: Int?
        public var maxCompletionTokens: Int?
        public var reasoningEffort: String?
        public var seed: Int?

        public init(
            model: String, messages: [Message], temperature: Double? = nil, maxTokens: Int? = nil,
            maxCompletionTokens: Int? = nil, reasoningEffort: String? = nil, seed: Int? = nil
        ) {
            self.model = model
            self.messages = messages
            self.temperature = temperature
            self.maxTokens = maxTokens
            self.maxCompletionTokens = maxCompletionTokens
            self.reasoningEffort = reasoningEffort
            self.seed = seed
        }

        enum CodingKeys: String, CodingKey {
            case model, messages, temperature, seed
            case maxTokens = "max_tokens", maxCompletionTokens = "max_completion_tokens"
            case reasoningEffort = "reasoning_effort"
        }
    }

    /// One message. `content` is a string, or (as clients may send it) a list of text parts, or null in an
    /// assistant message that carries only tool calls.
    public struct Message: Codable, Sendable, Equatable {
        public var role: String
        public var content: String?

        public init(role: String, content: String?) {
            self.role = role
            self.content = content
        }

        public init(from decoder: any Decoder) throws {
            let container = try decoder.container(keyedBy: CodingKeys.self)
            role = container.lenient(String.self, forKey: .role) ?? "assistant"
            content = try container.decodeTextContent(forKey: .content)
        }

        enum CodingKeys: String, CodingKey { case role, content }
    }

    /// The answer to a chat request.
    public struct ChatCompletion: Codable, Sendable, Equatable {
        public var id: String
        public var object = "chat.completion"
        public var created: Int?
        public var model: String
        public var choices: [Choice]
        public var usage: Usage?

        public init(id: String, created: Int? = nil, model: String, choices: [Choice], usage: Usage?) {
            self.id = id
            self.created = created
            self.model = model
            self.choices = choices
            self.usage = usage
        }

        /// Only `choices` is required: compatible servers leave out what the answer does not need.
        public init(from decoder: any Decoder) throws {
            let container = try decoder.container(keyedBy: CodingKeys.self)
            id = container.lenient(String.self, forKey: .id) ?? ""
            object = container.lenient(String.self, forKey: .object) ?? "chat.completion"
            created = container.lenient(Int.self, forKey: .created)
            model = container.lenient(String.self, forKey: .model) ?? ""
            choices = try container.decode([Choice].self, forKey: .choices)
            usage = container.lenient(Usage.self, forKey: .usage)
        }

        enum CodingKeys: String, CodingKey { case id, object, created, model, choices, usage }
    }

    public struct Choice: Codable, Sendable, Equatable {
        public var index: Int
        public var message: Message
        /// `stop`, or `length` when the answer was cut off at the token limit.
        public var finishReason: String?

        public init(index: Int = 0, message: Message, finishReason: String?) {
            self.index = index
            self.message = message
            self.finishReason = finishReason
        }

        public init(from decoder: any Decoder) throws {
            let container = try decoder.container(keyedBy: CodingKeys.self)
            index = container.lenient(Int.self, forKey: .index) ?? 0
            message = try container.decode(Message.self, forKey: .message)
            finishReason = container.lenient(String.self, forKey: .finishReason)
        }

        enum CodingKeys: String, CodingKey {
            case index, message
            case finishReason = "finish_reason"
        }
    }

    /// Token counts; a field that is absent or not an integer reads as nil.
    public struct Usage: Codable, Sendable, Equatable {
        public var promptTokens: Int?
        public var completionTokens: Int?
        public var totalTokens: Int?

        public init(promptTokens: Int?, completionTokens: Int?) {
            self.promptTokens = promptTokens
            self.completionTokens = completionTokens
            self.totalTokens = promptTokens.flatMap { prompt in completionTokens.map { prompt + $0 } }
        }

        public init(from decoder: any Decoder) throws {
            let container = try decoder.container(keyedBy: CodingKeys.self)
            promptTokens = container.lenient(Int.self, forKey: .promptTokens)
            completionTokens = container.lenient(Int.self, forKey: .completionTokens)
            totalTokens = container.lenient(Int.self, forKey: .totalTokens)
        }

        enum CodingKeys: String, CodingKey {
            case promptTokens = "prompt_tokens", completionTokens = "completion_tokens"
            case totalTokens = "total_tokens"
        }
    }

    /// `{"error": {...}}`, the body of every error status.
    public struct ErrorBody: Codable, Sendable, Equatable {
        public var error: Detail

        public init(message: String, type: String, param: String? = nil, code: String? = nil) {
            self.error = Detail(message: message, type: type, param: param, code: code)
        }

        public struct Detail: Codable, Sendable, Equatable {
            public var message: String
            public var type: String?
            public var param: String?
            /// Machine-readable: `unsupported_parameter`, `unsupported_value`, `model_not_found`,
            /// `context_length_exceeded`, `rate_limit_exceeded`, `insufficient_quota`, ...
            public var code: String?

            public init(from decoder: any Decoder) throws {
                let container = try decoder.container(keyedBy: CodingKeys.self)
                message = container.lenient(String.self, forKey: .message) ?? ""
                type = container.lenient(String.self, forKey: .type)
                param = container.lenient(String.self, forKey: .param)
                // Some servers send a numeric code.
                code =
                    container.lenient(String.self, forKey: .code)
                    ?? container.lenient(Int.self, forKey: .code).map(String.init)
            }

            init(message: String, type: String?, param: String?, code: String?) {
                self.message = message
                self.type = type
                self.param = param
                self.code = code
            }

            /// `param` and `code` are written as null when absent, as OpenAI does.
            public func encode(to encoder: any Encoder) throws {
                var container = encoder.container(keyedBy: CodingKeys.self)
                try container.encode(message, forKey: .message)
                try container.encode(type, forKey: .type)
                try container.encode(param, forKey: .param)
                try container.encode(code, forKey: .code)
            }

            enum CodingKeys: String, CodingKey { case message, type, param, code }
        }
    }

    /// `POST /embeddings`: `input` is one string or a list of them.
    public struct EmbeddingsRequest: Codable, Sendable, Equatable {
        public var model: String
        public var input: [String]

        public init(model: String, input: [String]) {
            self.model = model
            self.input = input
        }

        public init(from decoder: any Decoder) throws {
            let container = try decoder.container(keyedBy: CodingKeys.self)
            model = try container.decode(String.self, forKey: .model)
            if let single = try? container.decode(String.self, forKey: .input) {
                input = [single]
            } else {
                input = try container.decode([String].self, forKey: .input)
            }
        }

        enum CodingKeys: String, CodingKey { case model, input }
    }

    public struct Embeddings: Codable, Sendable, Equatable {
        public var object = "list"
        public var model: String
        public var data: [Embedding]
        public var usage: Usage?

        public init(model: String, vectors: [[Double]], tokens: Int) {
            self.model = model
            self.data = vectors.enumerated().map { Embedding(index: $0.offset, embedding: $0.element) }
            self.usage = Usage(promptTokens: tokens, completionTokens: nil)
            self.usage?.totalTokens = tokens
        }

        /// Only `data` is required.
        public init(from decoder: any Decoder) throws {
            let container = try decoder.container(keyedBy: CodingKeys.self)
            object = container.lenient(String.self, forKey: .object) ?? "list"
            model = container.lenient(String.self, forKey: .model) ?? ""
            data = try container.decode([Embedding].self, forKey: .data)
            usage = container.lenient(Usage.self, forKey: .usage)
        }

        enum CodingKeys: String, CodingKey { case object, model, data, usage }

        public struct Embedding: Codable, Sendable, Equatable {
            public var object = "embedding"
            public var index: Int
            public var embedding: [Double]

            public init(index: Int, embedding: [Double]) {
                self.index = index
                self.embedding = embedding
            }

            /// Only `embedding` is required; a missing index is the entry's position (read by the client).
            public init(from decoder: any Decoder) throws {
                let container = try decoder.container(keyedBy: CodingKeys.self)
                object = container.lenient(String.self, forKey: .object) ?? "embedding"
                index = container.lenient(Int.self, forKey: .index) ?? -1
                embedding = try container.decode([Double].self, forKey: .embedding)
            }

            enum CodingKeys: String, CodingKey { case object, index, embedding }
        }
    }
}

public enum AnthropicWire {
    /// The `anthropic-version` header value the client sends.
    public static let version = "2023-06-01"

    /// `POST /messages`: system prompt as a top-level field, `max_tokens` required.
    public struct MessagesRequest: Codable, Sendable, Equatable {
        public var model: String
        public var maxTokens: Int
        public var system: String?
        public var messages: [Message]
        public var temperature: Double?

        public init(model: String, maxTokens: Int, system: String?, messages: [Message], temperature: Double?) {
            self.model = model
            self.maxTokens = maxTokens
            self.system = system
            self.messages = messages
            self.temperature = temperature
        }

        public init(from decoder: any Decoder) throws {
            let container = try decoder.container(keyedBy: CodingKeys.self)
            model = try container.decode(String.self, forKey: .model)
            maxTokens = try container.decode(Int.self, forKey: .maxTokens)
            system = try container.decodeTextContent(forKey: .system)
            messages = try container.decode([Message].self, forKey: .messages)
            temperature = try container.decodeIfPresent(Double.self, forKey: .temperature)
        }

        enum CodingKeys: String, CodingKey {
            case model, system, messages, temperature
            case maxTokens = "max_tokens"
        }
    }

    /// One message: `user` or `assistant`, content as a string or a list of text blocks.
    public struct Message: Codable, Sendable, Equatable {
        public var role: String
        public var content: String

        public init(role: String, content: String) {
            self.role = role
            self.content = content
        }

        public init(from decoder: any Decoder) throws {
            let container = try decoder.container(keyedBy: CodingKeys.self)
            role = container.lenient(String.self, forKey: .role) ?? "assistant"
            content = try container.decodeTextContent(forKey: .content) ?? ""
        }

        enum CodingKeys: String, CodingKey { case role, content }
    }

    public struct MessagesResponse: Codable, Sendable, Equatable {
        public var id: String
        public var type = "message"
        public var role = "assistant"
        public var model: String
        public var content: [Block]
        /// `end_turn`, `stop_sequence`, or `max_tokens` when the answer was cut off.
        public var stopReason: String?
        public var stopSequence: String?
        public var usage: Usage

        public init(id: String, model: String, text: String?, stopReason: String, usage: Usage) {
            self.id = id
            self.model = model
            self.content = text.map { [Block(type: "text", text: $0)] } ?? []
            self.stopReason = stopReason
            self.usage = usage
        }

        /// Only `content` is required: proxies leave out what the answer does not need.
        public init(from decoder: any Decoder) throws {
            let container = try decoder.container(keyedBy: CodingKeys.self)
            id = container.lenient(String.self, forKey: .id) ?? ""
            type = container.lenient(String.self, forKey: .type) ?? "message"
            role = container.lenient(String.self, forKey: .role) ?? "assistant"
            model = container.lenient(String.self, forKey: .model) ?? ""
            content = try container.decode([Block].self, forKey: .content)
            stopReason = container.lenient(String.self, forKey: .stopReason)
            stopSequence = container.lenient(String.self, forKey: .stopSequence)
            usage =
                container.lenient(Usage.self, forKey: .usage)
                ?? Usage(inputTokens: nil, outputTokens: nil)
        }

        /// The text blocks joined (other blocks, such as thinking, are not the answer).
        public var text: String { content.compactMap { $0.type == "text" ? $0.text : nil }.joined() }

        /// `stop_sequence` is written as null when absent, as Anthropic does.
        public func encode(to encoder: any Encoder) throws {
            var container = encoder.container(keyedBy: CodingKeys.self)
            try container.encode(id, forKey: .id)
            try container.encode(type, forKey: .type)
            try container.encode(role, forKey: .role)
            try container.encode(model, forKey: .model)
            try container.encode(content, forKey: .content)
            try container.encode(stopReason, forKey: .stopReason)
            try container.encode(stopSequence, forKey: .stopSequence)
            try container.encode(usage, forKey: .usage)
        }

        enum CodingKeys: String, CodingKey {
            case id, type, role, model, content, usage
            case stopReason = "stop_reason", stopSequence = "stop_sequence"
        }
    }

    public struct Block: Codable, Sendable, Equatable {
        public var type: String
        public var text: String?

        public init(type: String, text: String?) {
            self.type = type
            self.text = text
        }
    }

    /// Token counts; a field that is absent or not an integer reads as nil.
    public struct Usage: Codable, Sendable, Equatable {
        public var inputTokens: Int?
        public var outputTokens: Int?

        public init(inputTokens: Int?, outputTokens: Int?) {
            self.inputTokens = inputTokens
            self.outputTokens = outputTokens
        }

        public init(from decoder: any Decoder) throws {
            let container = try decoder.container(keyedBy: CodingKeys.self)
            inputTokens = container.lenient(Int.self, forKey: .inputTokens)
            outputTokens = container.lenient(Int.self, forKey: .outputTokens)
        }

        enum CodingKeys: String, CodingKey {
            case inputTokens = "input_tokens", outputTokens = "output_tokens"
        }
    }

    /// `{"type": "error", "error": {"type": ..., "message": ...}}`.
    public struct ErrorBody: Codable, Sendable, Equatable {
        public var type = "error"
        public var error: Detail

        public init(type: String, message: String) { self.error = Detail(type: type, message: message) }

        public struct Detail: Codable, Sendable, Equatable {
            /// `authentication_error`, `permission_error`, `not_found_error`, `invalid_request_error`,
            /// `rate_limit_error`, `overloaded_error`, `api_error`.
            public var type: String
            public var message: String
        }
    }
}

extension KeyedDecodingContainer {
    /// A field read leniently: absent, null or of another type all read as nil (for what one server sends and
    /// another leaves out or spells otherwise).
    func lenient<T: Decodable>(_ type: T.Type, forKey key: Key) -> T? {
        (try? decodeIfPresent(type, forKey: key)) ?? nil
    }

    /// A text field that may be a string, a list of `{"type": "text", "text": ...}` blocks, null or absent.
    func decodeTextContent(forKey key: Key) throws -> String? {
        guard contains(key), try !decodeNil(forKey: key) else { return nil }
        if let text = try? decode(String.self, forKey: key) { return text }
        return try decode([TextPart].self, forKey: key).compactMap { $0.type == "text" ? $0.text : nil }.joined()
    }
}

/// One part of a content list; only text parts are read.
private struct TextPart: Decodable {
    var type: String
    var text: String?
}

/// The JSON coders the wire types are used with.
public enum WireJSON {
    public static func encode(_ value: some Encodable) -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        // Every wire type encodes; a failure here is a programming error caught by the tests.
        return (try? encoder.encode(value)) ?? Data("{}".utf8)
    }

    public static func decode<T: Decodable>(_ type: T.Type, _ data: Data) -> T? {
        try? JSONDecoder().decode(type, from: data)
    }
}
