import ConflictScope
import Foundation
import Logging

/// One AMQP connection to RabbitMQ (rabbitmq-c underneath), owned by its own OS thread.
///
/// The connection is made in the background and re-made after every failure, with backoff from 0.1 s doubling
/// to 2 s, until `close()`. After a reconnect, unconfirmed messages are published again and consumers are
/// re-created; queues are not re-declared. Operations issued while disconnected wait for the connection.
///
/// Channel 1 publishes in confirm mode, channel 2 carries the consumers, channel 3 queue administration.
/// Delivery is at least once: a message can arrive twice after a reconnect.
public final class BrokerConnection: TaskTransport {
    // Sendable without @unchecked: every stored property is an immutable Sendable value. The C connection and
    // all mutable state live in `BrokerWorker`, which only its own thread touches; Swift callers talk to it
    // through `BrokerMailbox`, whose state is lock-protected.

    public let settings: BrokerSettings
    public let name: String
    private let mailbox: BrokerMailbox

    /// Starts the connection's thread, which connects in the background.
    /// - Parameters:
    ///   - name: Identifies the connection in logs (metadata `broker.connection`), in its thread's name and in
    ///     its consumer tags.
    ///   - logger: Used from the connection's thread; the password never appears in messages.
    public init(settings: BrokerSettings, name: String, logger: Logger) {
        self.settings = settings
        self.name = name
        let mailbox = BrokerMailbox()
        self.mailbox = mailbox
        var logger = logger
        logger[metadataKey: "broker.connection"] = "\(name)"
        let worker = BrokerWorker(settings: settings, logger: logger, mailbox: mailbox)
        let thread = Thread { worker.run() }
        thread.name = "broker \(name)"
        thread.start()
    }

    deinit {
        mailbox.requestClose()
    }

    /// Whether the connection is up at this moment.
    public var isConnected: Bool { mailbox.isConnected }

    /// Declares durable classic queues (see `QueueSpec` for the arguments). Idempotent; throws
    /// `BrokerError.operationRefused` if a queue exists with other arguments. Waits for the connection.
    public func declare(_ queues: [QueueSpec]) async throws {
        for queue in queues {
            try Self.checkShortString(queue.name, "queue name")
            if let target = queue.deadLetterTo { try Self.checkShortString(target, "dead-letter queue name") }
        }
        try await withCheckedThrowingContinuation { continuation in
            mailbox.send(.declare(queues, continuation))
        }
    }

    /// Publishes a persistent message (delivery mode 2) to the default exchange with routing key `queue`, and
    /// returns once the broker has confirmed it (publisher confirms, pipelined with other publishes).
    ///
    /// If the connection drops before the confirm, the message is published again after reconnecting and the
    /// call waits for that confirm. Throws `BrokerError.publishRejected` on basic.nack,
    /// `BrokerError.connectionClosed` after `close()`, `BrokerError.messageTooLarge` (without sending) for a
    /// body over `settings.maxMessageBytes`, `BrokerError.unroutable` when no queue of that name exists (the
    /// message is mandatory), and `BrokerError.operationRefused` when the broker closes the publish channel
    /// while the message is unconfirmed (it is not published again).
    /// - Parameters:
    ///   - headers: AMQP headers, sent as string values.
    ///   - expirationMilliseconds: per-message TTL; an expired message is dead-lettered if its queue has a
    ///     dead-letter target (this is how delay queues work).
    public func publish(
        _ body: [UInt8], to queue: String, headers: [String: String] = [:], expirationMilliseconds: Int? = nil
    ) async throws {
        try Self.checkShortString(queue, "queue name")
        for key in headers.keys { try Self.checkShortString(key, "header name") }
        if let expirationMilliseconds, expirationMilliseconds < 0 {
            throw BrokerError.invalidArgument("expiration must not be negative")
        }
        guard body.count <= settings.maxMessageBytes else {
            throw BrokerError.messageTooLarge(body.count, limit: settings.maxMessageBytes, queue: queue)
        }
        let expiration = expirationMilliseconds.map { String($0) }
        try await withCheckedThrowingContinuation { continuation in
            let message = OutgoingMessage(
                body: body, queue: queue, headers: headers, expiration: expiration, continuation: continuation)
            mailbox.send(.publish(message))
        }
    }

    /// Starts consuming `queue` with manual acks and a per-consumer prefetch (basic.qos with global = false,
    /// sent before basic.consume). Returns once the broker has accepted the consumer; throws
    /// `BrokerError.queueNotFound` if the queue does not exist.
    ///
    /// After a reconnect the consumer is re-created and keeps feeding the same stream. The stream finishes on
    /// `stopConsuming()` (once the broker has confirmed the cancel) and on `close()`. Ending the iteration
    /// (cancelling the reading task) cancels the consumer; messages that arrive afterwards are requeued.
    /// - Parameter prefetch: at most this many unacked deliveries at a time (0 = unlimited, at most 65535).
    public func consume(_ queue: String, prefetch: Int) async throws -> AsyncStream<Delivery> {
        try Self.checkShortString(queue, "queue name")
        guard (0...Int(UInt16.max)).contains(prefetch) else {
            throw BrokerError.invalidArgument("prefetch must be from 0 to 65535")
        }
        let tag = "\(name.utf8.count <= 200 ? name : "consumer").\(mailbox.nextConsumerNumber())"
        let (stream, continuation) = AsyncStream.makeStream(of: Delivery.self)
        let mailbox = self.mailbox
        continuation.onTermination = { _ in mailbox.send(.cancelConsumer(tag: tag)) }
        try await withCheckedThrowingContinuation { started in
            let request = ConsumeRequest(
                tag: tag, queue: queue, prefetch: UInt16(prefetch), stream: continuation, started: started)
            mailbox.send(.consume(request))
        }
        return stream
    }

    /// Acknowledges a delivery. A delivery from before a reconnect is skipped: its tag is void (acking it would
    /// close the channel) and the broker redelivers the message anyway.
    public func ack(_ delivery: Delivery) async {
        await withCheckedContinuation { done in
            mailbox.send(.ack(tag: delivery.deliveryTag, generation: delivery.generation, done: done))
        }
    }

    /// Rejects a delivery: back to its queue (`requeue: true`, redelivered = true) or to the queue's
    /// dead-letter target (dropped if it has none). Deliveries from before a reconnect are skipped, as in `ack`.
    public func reject(_ delivery: Delivery, requeue: Bool) async {
        await withCheckedContinuation { done in
            mailbox.send(
                .reject(tag: delivery.deliveryTag, generation: delivery.generation, requeue: requeue, done: done))
        }
    }

    /// The ready-message and consumer counts of a queue (passive declare), or nil if it does not exist.
    public func queueState(_ queue: String) async throws -> (messages: Int, consumers: Int)? {
        try Self.checkShortString(queue, "queue name")
        return try await withCheckedThrowingContinuation { continuation in
            mailbox.send(.queueState(queue, continuation))
        }
    }

    /// Deletes a queue with its messages; deleting a missing queue succeeds.
    public func deleteQueue(_ queue: String) async throws {
        try Self.checkShortString(queue, "queue name")
        try await withCheckedThrowingContinuation { continuation in
            mailbox.send(.deleteQueue(queue, continuation))
        }
    }

    /// Cancels every consumer (basic.cancel) and returns once the broker has confirmed, so no new deliveries
    /// arrive; their streams finish after the deliveries already received. In-flight deliveries can still be
    /// acked or rejected.
    public func stopConsuming() async {
        await withCheckedContinuation { done in
            mailbox.send(.stopConsuming(done))
        }
    }

    /// Closes the connection and stops its thread. Pending publishes throw `BrokerError.connectionClosed`,
    /// consumer streams finish; later calls fail with `connectionClosed`. Calling it again just waits.
    public func close() async {
        mailbox.requestClose()
        await mailbox.waitUntilFinished()
    }

    /// AMQP short strings (queue names, header names) hold at most 255 bytes.
    private static func checkShortString(_ value: String, _ what: String) throws {
        guard value.utf8.count <= 255 else { throw BrokerError.invalidArgument("\(what) longer than 255 bytes") }
    }
}
