import Foundation

/// Why the in-memory transport refused a publish (RabbitMQ's refusals, for the roles' unit tests).
public enum TransportError: Error, Equatable, CustomStringConvertible {
    /// No queue of that name: a mandatory publish fails instead of vanishing.
    case unroutable(queue: String)
    case messageTooLarge(bytes: Int, limit: Int)
    case closed

    public var description: String {
        switch self {
        case .unroutable(let queue): "no queue \(queue) takes the message"
        case .messageTooLarge(let bytes, let limit): "a message of \(bytes) bytes is over the limit of \(limit)"
        case .closed: "the connection is closed"
        }
    }
}

/// Queues in this process, with RabbitMQ's semantics as the roles rely on them: FIFO queues, consumers
/// fed round robin up to their prefetch, redelivery of what a closed connection held, dead-lettering of
/// rejected and expired messages, a message size limit and a delivery limit. `connect()` gives each role
/// its own connection, as in the cluster.
public actor InMemoryBroker {
    struct Message {
        var body: [UInt8]
        var headers: [String: String]
        var redelivered = false
        var deliveries = 0
        var id: Int
    }

    struct Queue {
        var spec: QueueSpec
        var ready: [Message] = []
    }

    struct Consumer {
        let id: Int
        let connection: Int
        let queue: String
        let prefetch: Int
        let continuation: AsyncStream<Delivery>.Continuation
        var held = 0
    }

    struct Held {
        let queue: String
        let message: Message
        let consumer: Int
        let connection: Int
    }

    public let maxMessageBytes: Int
    /// Deliveries after which a requeued message is dead-lettered instead (RabbitMQ 4's quorum default: 20).
    public let deliveryLimit: Int
    private var queues: [String: Queue] = [:]
    private var consumers: [Int: Consumer] = [:]
    private var held: [UInt64: Held] = [:]
    private var closed: Set<Int> = []
    private var nextID = 0
    private var nextTag: UInt64 = 0
    private var turn = 0

    public init(maxMessageBytes: Int = 16 * 1024 * 1024, deliveryLimit: Int = 20) {
        self.maxMessageBytes = maxMessageBytes
        self.deliveryLimit = deliveryLimit
    }

    /// A connection of its own for one role.
    public func connect() -> InMemoryTransport {
        nextID += 1
        return InMemoryTransport(broker: self, connection: nextID)
    }

    private func check(_ connection: Int) throws {
        if closed.contains(connection) { throw TransportError.closed }
    }

    func declare(_ specs: [QueueSpec], connection: Int) throws {
        try check(connection)
        for spec in specs where queues[spec.name] == nil { queues[spec.name] = Queue(spec: spec) }
    }

    func publish(
        _ body: [UInt8], to queue: String, headers: [String: String], expirationMilliseconds: Int?, connection: Int
    ) throws {
        try check(connection)
        guard body.count <= maxMessageBytes else {
            throw TransportError.messageTooLarge(bytes: body.count, limit: maxMessageBytes)
        }
        guard queues[queue] != nil else { throw TransportError.unroutable(queue: queue) }
        nextID += 1
        let message = Message(body: body, headers: headers, id: nextID)
        queues[queue]!.ready.append(message)
        if let expirationMilliseconds {
            Task { [id = message.id] in
                try? await Task.sleep(for: .milliseconds(expirationMilliseconds))
                self.expire(id, in: queue)
            }
        }
        dispatch(queue)
    }

    /// An expired message still waiting moves on to its queue's dead-letter route.
    private func expire(_ id: Int, in queue: String) {
        guard let index = queues[queue]?.ready.firstIndex(where: { $0.id == id }) else { return }
        let message = queues[queue]!.ready.remove(at: index)
        deadLetter(message, from: queue)
    }

    private func deadLetter(_ message: Message, from queue: String) {
        guard let target = queues[queue]?.spec.deadLetterTo, queues[target] != nil else { return }
        nextID += 1
        queues[target]!.ready.append(Message(body: message.body, headers: message.headers, id: nextID))
        dispatch(target)
    }

    func consume(_ queue: String, prefetch: Int, connection: Int) throws -> AsyncStream<Delivery> {
        try check(connection)
        guard queues[queue] != nil else { throw TransportError.unroutable(queue: queue) }
        let (stream, continuation) = AsyncStream.makeStream(of: Delivery.self)
        nextID += 1
        consumers[nextID] = Consumer(
            id: nextID, connection: connection, queue: queue, prefetch: max(1, prefetch), continuation: continuation)
        dispatch(queue)
        return stream
    }

    /// Hands ready messages to the queue's consumers with room, in turn.
    private func dispatch(_ queue: String) {
        while queues[queue]?.ready.isEmpty == false {
            let open = consumers.values.filter { $0.queue == queue && $0.held < $0.prefetch }.sorted { $0.id < $1.id }
            guard !open.isEmpty else { return }
            turn += 1
            var consumer = open[turn % open.count]
            var message = queues[queue]!.ready.removeFirst()
            message.deliveries += 1
            nextTag += 1
            let delivery = Delivery(
                queue: queue, body: message.body, headers: message.headers, redelivered: message.redelivered,
                deliveryTag: nextTag, generation: UInt64(consumer.connection))
            if case .terminated = consumer.continuation.yield(delivery) {
                // Its reader is gone: the consumer ends and the message waits for another.
                consumers[consumer.id] = nil
                queues[queue]!.ready.insert(message, at: 0)
                continue
            }
            consumer.held += 1
            consumers[consumer.id] = consumer
            held[nextTag] = Held(queue: queue, message: message, consumer: consumer.id, connection: consumer.connection)
        }
    }

    func settle(_ delivery: Delivery, requeue: Bool?, connection: Int) {
        guard let entry = held[delivery.deliveryTag], entry.connection == connection else { return }
        held[delivery.deliveryTag] = nil
        consumers[entry.consumer]?.held -= 1
        switch requeue {
        case nil: break
        case true?: giveBack(entry)
        case false?: deadLetter(entry.message, from: entry.queue)
        }
        dispatch(entry.queue)
    }

    /// Back to the head of its queue, flagged redelivered; past the delivery limit, dead-lettered instead.
    private func giveBack(_ entry: Held) {
        guard queues[entry.queue] != nil else { return }
        var message = entry.message
        if message.deliveries >= deliveryLimit {
            deadLetter(message, from: entry.queue)
            return
        }
        message.redelivered = true
        queues[entry.queue]!.ready.insert(message, at: 0)
    }

    func stopConsuming(connection: Int) {
        for consumer in consumers.values where consumer.connection == connection {
            consumer.continuation.finish()
            consumers[consumer.id] = nil
        }
    }

    /// What the connection held goes back to its queues.
    func close(connection: Int) {
        stopConsuming(connection: connection)
        closed.insert(connection)
        let mine = held.filter { $0.value.connection == connection }.sorted { $0.key > $1.key }
        for (tag, entry) in mine {
            held[tag] = nil
            giveBack(entry)
        }
        for queue in Set(mine.map(\.value.queue)) { dispatch(queue) }
    }

    func queueState(_ queue: String) -> (messages: Int, consumers: Int)? {
        guard let found = queues[queue] else { return nil }
        return (found.ready.count, consumers.values.filter { $0.queue == queue }.count)
    }

    func deleteQueue(_ queue: String) {
        queues[queue] = nil
        for consumer in consumers.values where consumer.queue == queue {
            consumer.continuation.finish()
            consumers[consumer.id] = nil
        }
    }
}

/// One role's connection to an `InMemoryBroker`.
public struct InMemoryTransport: TaskTransport {
    let broker: InMemoryBroker
    let connection: Int

    public func declare(_ queues: [QueueSpec]) async throws { try await broker.declare(queues, connection: connection) }

    public func publish(
        _ body: [UInt8], to queue: String, headers: [String: String], expirationMilliseconds: Int?
    ) async throws {
        try await broker.publish(
            body, to: queue, headers: headers, expirationMilliseconds: expirationMilliseconds, connection: connection)
    }

    public func consume(_ queue: String, prefetch: Int) async throws -> AsyncStream<Delivery> {
        try await broker.consume(queue, prefetch: prefetch, connection: connection)
    }

    public func ack(_ delivery: Delivery) async { await broker.settle(delivery, requeue: nil, connection: connection) }

    public func reject(_ delivery: Delivery, requeue: Bool) async {
        await broker.settle(delivery, requeue: requeue, connection: connection)
    }

    public func stopConsuming() async { await broker.stopConsuming(connection: connection) }
    public func close() async { await broker.close(connection: connection) }

    public func queueState(_ queue: String) async throws -> (messages: Int, consumers: Int)? {
        await broker.queueState(queue)
    }

    public func deleteQueue(_ queue: String) async throws { await broker.deleteQueue(queue) }
}
