/// How the roles pass tasks and results: durable queues, publishes the transport confirms, and consumers
/// that acknowledge each delivery or reject it (back to its queue, or on to the queue's dead-letter
/// route). At least once: a delivery not acknowledged when its consumer goes away comes again, flagged
/// `redelivered`. RabbitMQ in the cluster (`BrokerConnection`), `InMemoryTransport` in one process.
public protocol TaskTransport: Sendable {
    /// Declares durable queues; idempotent.
    func declare(_ queues: [QueueSpec]) async throws
    /// Publishes `body` to `queue` and returns once the transport holds it durably. A message no queue takes
    /// fails. `expirationMilliseconds`: after it the message moves to the queue's dead-letter route.
    func publish(_ body: [UInt8], to queue: String, headers: [String: String], expirationMilliseconds: Int?)
        async throws
    /// The deliveries of `queue`, at most `prefetch` unacknowledged at once. The stream ends on
    /// `stopConsuming` or `close`.
    func consume(_ queue: String, prefetch: Int) async throws -> AsyncStream<Delivery>
    func ack(_ delivery: Delivery) async
    /// Back to its queue (`requeue`, flagged redelivered), or on to the queue's dead-letter route.
    func reject(_ delivery: Delivery, requeue: Bool) async
    /// Ends every consumer's stream; deliveries already handed out may still be settled.
    func stopConsuming() async
    /// Ends the connection: unacknowledged deliveries go back to their queues.
    func close() async
    /// Messages ready in `queue` and its consumers, or nil when there is no such queue.
    func queueState(_ queue: String) async throws -> (messages: Int, consumers: Int)?
    func deleteQueue(_ queue: String) async throws
}

extension TaskTransport {
    public func publish(_ body: [UInt8], to queue: String) async throws {
        try await publish(body, to: queue, headers: [:], expirationMilliseconds: nil)
    }

    public func publish(_ body: [UInt8], to queue: String, headers: [String: String]) async throws {
        try await publish(body, to: queue, headers: headers, expirationMilliseconds: nil)
    }
}

/// A durable queue to declare.
public struct QueueSpec: Sendable, Equatable {
    /// Queue name (at most 255 bytes of UTF-8).
    public var name: String
    /// Where rejected (requeue: false) and expired messages go: the queue is declared with
    /// `x-dead-letter-exchange` "" (the default exchange) and `x-dead-letter-routing-key` = this queue's name.
    /// nil: such messages are dropped.
    public var deadLetterTo: String?

    public init(name: String, deadLetterTo: String? = nil) {
        self.name = name
        self.deadLetterTo = deadLetterTo
    }
}

/// One message handed to a consumer. Settle it with `ack` or `reject` on the connection it came from.
public struct Delivery: Sendable {
    /// The queue the consumer reads (not the routing key, which differs for dead-lettered messages).
    public var queue: String
    public var body: [UInt8]
    /// The message's AMQP headers table: string and byte-string values as they are, integers, booleans and
    /// floats converted to their decimal text; nested tables and arrays (such as `x-death`) are left out.
    public var headers: [String: String]
    /// The broker delivered this message before (to us or another consumer) without it being acked.
    public var redelivered: Bool

    /// The transport's tag for this delivery, valid only on the channel instance it arrived on.
    package let deliveryTag: UInt64
    /// Which consume-channel instance the delivery arrived on; bumped on every reconnect and channel
    /// re-open. Acks for older generations are dropped: the broker redelivers those messages anyway.
    package let generation: UInt64

    package init(
        queue: String, body: [UInt8], headers: [String: String], redelivered: Bool, deliveryTag: UInt64,
        generation: UInt64
    ) {
        self.queue = queue
        self.body = body
        self.headers = headers
        self.redelivered = redelivered
        self.deliveryTag = deliveryTag
        self.generation = generation
    }
}
