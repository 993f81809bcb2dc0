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

    static func object(_ bytes: Data) throws(Rejection) -> [String: Any] {
        guard let object = (try? JSONSerialization.jsonObject(with: bytes)) as? [String: Any] else {
            throw Rejection(status: 400, type: "invalid_request_error", message: "the body is not a JSON object")
        }
        return object
    }

    /// Text of a message content: a string, or an array of text blocks.
    private static func text(_ content: Any?) throws(Rejection) -> String {
        if let text = content as? String { return text }
        if let blocks = content as? [[String: Any]] {
            return blocks.compactMap { $0["type"] as? String == "text" ? $0["text"] as? String : nil }.joined()
        }
        throw Rejection(status: 400, type: "invalid_request_error", message: "a message content is not text")
    }

    private static func integer(_ value: Any?) -> Int? { (value as? NSNumber)?.intValue }

    /// A chat request in this format. The sample index is the non-standard `seed` field (OpenAI's `seed`;
    /// the Anthropic client sends none, so there it is 0 unless a caller adds one).
    func chatRequest(_ object: [String: Any]) throws(Rejection) -> ChatRequest {
        guard let model = object["model"] as? String, !model.isEmpty else {
            throw Rejection(status: 400, type: "invalid_request_error", message: "model is required")
        }
        guard let entries = object["messages"] as? [[String: Any]], !entries.isEmpty else {
            throw Rejection(status: 400, type: "invalid_request_error", message: "messages must be a non-empty list")
        }
        var messages: [ChatMessage] = []
        if self == .anthropic, object["system"] != nil {
            messages.append(ChatMessage(.system, try Self.text(object["system"])))
        }
        for entry in entries {
            let roleName = entry["role"] as? String ?? ""
            let role: ChatMessage.Role
            switch (self, roleName) {
            case (.openAI, "system"), (.openAI, "developer"): role = .system
            case (_, "user"): role = .user
            case (_, "assistant"): role = .assistant
            default:
                throw Rejection(
                    status: 400, type: "invalid_request_error", message: "unknown message role \"\(roleName)\"")
            }
            messages.append(ChatMessage(role, try Self.text(entry["content"])))
        }
        let maxTokens = Self.integer(object["max_tokens"]) ?? Self.integer(object["max_completion_tokens"])
        if self == .anthropic && maxTokens == nil {
            throw Rejection(status: 400, type: "invalid_request_error", message: "max_tokens: Field required")
        }
        return ChatRequest(
            model: model, messages: messages, temperature: (object["temperature"] as? NSNumber)?.doubleValue ?? 1,
            maxTokens: max(1, maxTokens ?? SimServer.defaultMaxTokens), sampleIndex: Self.integer(object["seed"]) ?? 0)
    }

    /// An embeddings request: the model and its inputs (a string or a list of strings).
    static func embeddingsRequest(_ object: [String: Any]) throws(Rejection) -> (model: String, inputs: [String]) {
        guard let model = object["model"] as? String, !model.isEmpty else {
            throw Rejection(status: 400, type: "invalid_request_error", message: "model is required")
        }
        if let input = object["input"] as? String { return (model, [input]) }
        guard let inputs = object["input"] as? [String], !inputs.isEmpty else {
            throw Rejection(
                status: 400, type: "invalid_request_error", message: "input must be a string or a list of strings")
        }
        return (model, inputs)
    }

    func chatBody(_ request: ChatRequest, key: String, text: String, input: Int, output: Int) -> Data {
        let object: [String: Any]
        switch self {
        case .openAI:
            object = [
                "id": "chatcmpl-\(key.prefix(24))", "object": "chat.completion",
                "created": Int(Date().timeIntervalSince1970), "model": request.model,
                "choices": [
                    ["index": 0, "message": ["role": "assistant", "content": text], "finish_reason": "stop"]
                ],
                "usage": ["prompt_tokens": input, "completion_tokens": output, "total_tokens": input + output],
            ]
        case .anthropic:
            object = [
                "id": "msg_\(key.prefix(24))", "type": "message", "role": "assistant", "model": request.model,
                "content": [["type": "text", "text": text]], "stop_reason": "end_turn", "stop_sequence": NSNull(),
                "usage": ["input_tokens": input, "output_tokens": output],
            ]
        }
        return Self.data(object)
    }

    /// Written by hand: Foundation's JSON writer on Linux rounds doubles to 15 or 16 digits, and these must
    /// read back bit for bit (Swift's description is the shortest text that does).
    static func embeddingsBody(model: String, vectors: [[Double]], tokens: Int) -> Data {
        let name =
            (try? JSONSerialization.data(withJSONObject: model, options: [.fragmentsAllowed])) ?? Data("\"\"".utf8)
        var text = #"{"object":"list","model":"# + String(decoding: name, as: UTF8.self) + #","data":["#
        for (index, vector) in vectors.enumerated() {
            if index > 0 { text += "," }
            text += #"{"object":"embedding","index":\#(index),"embedding":["#
            text += vector.map { $0.isFinite ? "\($0)" : "0" }.joined(separator: ",") + "]}"
        }
        text += #"],"usage":{"prompt_tokens":\#(tokens),"total_tokens":\#(tokens)}}"#
        return Data(text.utf8)
    }

    /// The format's error body.
    func errorBody(type: String, message: String) -> Data {
        switch self {
        case .openAI:
            let code: Any = type == "rate_limit_error" ? "rate_limit_exceeded" : NSNull()
            let openAIType = type == "rate_limit_error" ? "requests" : type
            return Self.data(["error": ["message": message, "type": openAIType, "param": NSNull(), "code": code]])
        case .anthropic:
            return Self.data(["type": "error", "error": ["type": type, "message": message]])
        }
    }

    /// A 200 body whose answer is empty.
    func emptyBody(model: String) -> Data {
        switch self {
        case .openAI:
            Self.data([
                "id": "chatcmpl-empty", "object": "chat.completion", "model": model,
                "choices": [["index": 0, "message": ["role": "assistant", "content": ""], "finish_reason": "stop"]],
                "usage": ["prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0],
            ])
        case .anthropic:
            Self.data([
                "id": "msg_empty", "type": "message", "role": "assistant", "model": model, "content": [],
                "stop_reason": "end_turn", "usage": ["input_tokens": 0, "output_tokens": 0],
            ])
        }
    }

    /// A 200 body cut off in the middle, as a proxy that dropped the connection might leave it.
    static let malformedBody = Data(#"{"id": "cut-off", "choices": [{"index": 0, "message": {"role": "assi"#.utf8)

    static func data(_ object: Any) -> Data {
        (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])) ?? Data("{}".utf8)
    }
}
