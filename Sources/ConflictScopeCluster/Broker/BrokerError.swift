import ConflictScope

/// Why a broker operation failed. Descriptions never contain the password.
///
/// Compare with the static members (`error == .connectionClosed`): equality looks only at the kind of
/// failure, not at the detail text.
public struct BrokerError: Error, CustomStringConvertible, Equatable, Sendable {
    private enum Code: Sendable, Equatable {
        case invalidSettings
        case invalidArgument
        case connectionClosed
        case publishRejected
        case queueNotFound
        case operationRefused
        case messageTooLarge
        case unroutable
    }

    private let code: Code
    private let detail: String?

    private init(_ code: Code, _ detail: String? = nil) {
        self.code = code
        self.detail = detail
    }

    /// The settings (usually the AMQP URL) cannot be used; the description names what is wrong.
    public static let invalidSettings = BrokerError(.invalidSettings)
    /// An argument cannot be sent to the broker (for example a queue name longer than 255 bytes).
    public static let invalidArgument = BrokerError(.invalidArgument)
    /// `close()` was called, or the connection object was released: the operation will never complete.
    public static let connectionClosed = BrokerError(.connectionClosed)
    /// The broker answered a publish with basic.nack: it did not take responsibility for the message.
    public static let publishRejected = BrokerError(.publishRejected)
    /// The queue does not exist.
    public static let queueNotFound = BrokerError(.queueNotFound)
    /// The broker refused an operation with a channel error (for example re-declaring a queue with other
    /// arguments); the description carries the broker's reply code and text.
    public static let operationRefused = BrokerError(.operationRefused)
    /// The message is bigger than `BrokerSettings.maxMessageBytes`; it was not sent.
    public static let messageTooLarge = BrokerError(.messageTooLarge)
    /// The broker returned the message (it is published as mandatory): no queue of that name exists.
    public static let unroutable = BrokerError(.unroutable)

    static func invalidSettings(_ detail: String) -> BrokerError { BrokerError(.invalidSettings, detail) }
    static func invalidArgument(_ detail: String) -> BrokerError { BrokerError(.invalidArgument, detail) }
    static func queueNotFound(_ queue: String) -> BrokerError { BrokerError(.queueNotFound, "queue '\(queue)'") }
    static func messageTooLarge(_ bytes: Int, limit: Int, queue: String) -> BrokerError {
        BrokerError(.messageTooLarge, "\(bytes) bytes for queue '\(queue)', over the limit of \(limit)")
    }
    static func unroutable(_ queue: String) -> BrokerError { BrokerError(.unroutable, "queue '\(queue)'") }
    static func operationRefused(code: UInt16, text: String) -> BrokerError {
        BrokerError(.operationRefused, "\(code) \(text)")
    }

    public static func == (lhs: BrokerError, rhs: BrokerError) -> Bool { lhs.code == rhs.code }

    public var description: String {
        let summary: String
        switch code {
        case .invalidSettings: summary = "invalid broker settings"
        case .invalidArgument: summary = "invalid broker argument"
        case .connectionClosed: summary = "broker connection closed"
        case .publishRejected: summary = "broker rejected the message (basic.nack)"
        case .queueNotFound: summary = "queue not found"
        case .operationRefused: summary = "broker refused the operation"
        case .messageTooLarge: summary = "message too large to publish"
        case .unroutable: summary = "broker returned the message: no such queue"
        }
        guard let detail else { return summary }
        return "\(summary): \(detail)"
    }
}
