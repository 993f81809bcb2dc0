import ConflictScope

/// A Redis reply. Error replies are not values: ``RedisClient/command(_:)`` throws them as ``RedisError``.
public enum RedisReply: Sendable, Equatable {
    /// A bulk string (binary-safe; bytes that are not UTF-8 are repaired by `String(decoding:as:)`).
    case string(String)
    case integer(Int)
    case array([RedisReply])
    /// A nil bulk string or nil array.
    case null
    /// A simple status such as `OK`.
    case status(String)

    /// The text of a bulk string or status reply; nil otherwise.
    public var string: String? {
        switch self {
        case .string(let value), .status(let value): value
        default: nil
        }
    }

    /// The integer reply, or a bulk string that holds a decimal integer; nil otherwise.
    public var integer: Int? {
        switch self {
        case .integer(let value): value
        case .string(let value): Int(value)
        default: nil
        }
    }
}
