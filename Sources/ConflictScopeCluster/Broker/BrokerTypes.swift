/// A durable classic queue to declare.
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

    /// The broker's tag for this delivery, valid only on the channel instance it arrived on.
    let deliveryTag: UInt64
    /// Which consume-channel instance the delivery arrived on; bumped on every reconnect and channel
    /// re-open. Acks for older generations are dropped: the broker redelivers those messages anyway.
    let generation: UInt64

    init(
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
