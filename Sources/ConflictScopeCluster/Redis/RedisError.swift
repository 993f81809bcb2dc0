import ConflictScope

/// A failure reported by Redis or by ``RedisClient``. Its description never contains credentials.
public struct RedisError: Error, Sendable, Equatable, CustomStringConvertible {
    private enum Code: Sendable, Equatable {
        case invalidURL
        case errorReply(String)
        case unexpectedReply(String)
        case closed
    }

    private let code: Code

    private init(_ code: Code) { self.code = code }

    /// The Redis URL could not be parsed (the URL itself is not repeated, as it may hold a password).
    public static let invalidURL = RedisError(.invalidURL)
    /// The client was shut down before or while the command ran.
    public static let closed = RedisError(.closed)

    /// Redis answered with an error reply such as `ERR ...`, `WRONGTYPE ...` or `NOSCRIPT ...`.
    public static func errorReply(_ message: String) -> RedisError { RedisError(.errorReply(message)) }

    /// A reply did not have the shape the caller expected; `context` names what was expected.
    public static func unexpectedReply(_ context: String) -> RedisError { RedisError(.unexpectedReply(context)) }

    /// The server's error message, when this is an error reply.
    public var serverMessage: String? {
        if case .errorReply(let message) = code { message } else { nil }
    }

    /// True for the NOSCRIPT reply EVALSHA gives when the server no longer has the script.
    public var isNoScript: Bool { serverMessage?.hasPrefix("NOSCRIPT") ?? false }

    public var description: String {
        switch code {
        case .invalidURL: "invalid Redis URL (expected redis://[[user]:password@]host[:port][/db])"
        case .errorReply(let message): "Redis error reply: \(message)"
        case .unexpectedReply(let context): "unexpected Redis reply: expected \(context)"
        case .closed: "Redis client is shut down"
        }
    }
}
