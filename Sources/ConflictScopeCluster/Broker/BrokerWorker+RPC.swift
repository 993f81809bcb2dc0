import CRabbitMQ
import ConflictScope
import Logging

/// A synchronous AMQP method waiting for its turn on a channel.
enum RPCRequest {
    case openChannel
    case qos(prefetch: UInt16)
    case consume(tag: String)
    case cancel(tag: String)
    case declare(QueueSpec, DeclareBatch)
    /// A passive queue.declare: reports the queue's counts, or checks that it exists before consuming.
    case inspect(queue: String, purpose: InspectPurpose)
    case delete(queue: String, CheckedContinuation<Void, any Error>)

    /// The reply method that completes the request.
    var reply: amqp_method_number_t {
        switch self {
        case .openChannel: return AMQP_CHANNEL_OPEN_OK_METHOD
        case .qos: return AMQP_BASIC_QOS_OK_METHOD
        case .consume: return AMQP_BASIC_CONSUME_OK_METHOD
        case .cancel: return AMQP_BASIC_CANCEL_OK_METHOD
        case .declare, .inspect: return AMQP_QUEUE_DECLARE_OK_METHOD
        case .delete: return AMQP_QUEUE_DELETE_OK_METHOD
        }
    }
}

enum InspectPurpose {
    case report(CheckedContinuation<(messages: Int, consumers: Int)?, any Error>)
    case startConsumer(tag: String)
}

/// One `declare(_:)` call: resumed when every queue is declared, or at the first refusal.
final class DeclareBatch {
    var remaining: Int
    var continuation: CheckedContinuation<Void, any Error>?

    init(remaining: Int, continuation: CheckedContinuation<Void, any Error>) {
        self.remaining = remaining
        self.continuation = continuation
    }
}

/// The synchronous methods of one channel: sent one at a time, in order; the head is in flight when
/// `inFlight` is set.
final class RPCQueue {
    let channel: amqp_channel_t
    var requests: [RPCRequest] = []
    var inFlight = false

    init(channel: amqp_channel_t) { self.channel = channel }

    func reset() {
        requests = []
        inFlight = false
    }
}

final class Consumer {
    enum State {
        /// Waiting for the passive declare that checks the queue exists.
        case checking
        /// basic.qos and basic.consume are queued or in flight (again, after a reconnect).
        case starting
        case active
        /// basic.cancel is queued or in flight; removed on cancel-ok or when the channel goes away.
        case cancelling
    }

    let tag: String
    let queue: String
    let prefetch: UInt16
    let stream: AsyncStream<Delivery>.Continuation
    /// The `consume` caller, until the first basic.consume-ok.
    var started: CheckedContinuation<Void, any Error>?
    var state = State.checking

    init(_ request: ConsumeRequest) {
        tag = request.tag
        queue = request.queue
        prefetch = request.prefetch
        stream = request.stream
        started = request.started
    }
}

extension BrokerWorker {
    /// Sends the next request of `queue` unless one is in flight.
    func pump(_ queue: RPCQueue) {
        while let connection, !queue.inFlight, let request = queue.requests.first {
            if isObsolete(request) {
                queue.requests.removeFirst()
                continue
            }
            let status = send(request, on: queue.channel, connection)
            guard status == AMQP_STATUS_OK.rawValue else {
                connectionLost("send failed: \(amqpStatusText(status))")
                return
            }
            queue.inFlight = true
        }
    }

    private func isObsolete(_ request: RPCRequest) -> Bool {
        switch request {
        case .declare(_, let batch): return batch.continuation == nil
        case .consume(let tag), .cancel(let tag), .inspect(_, .startConsumer(let tag)): return consumers[tag] == nil
        default: return false
        }
    }

    private func send(_ request: RPCRequest, on channel: amqp_channel_t, _ connection: amqp_connection_state_t)
        -> Int32
    {
        let arena = CArena()
        return withExtendedLifetime(arena) {
            switch request {
            case .openChannel:
                var method = amqp_channel_open_t(out_of_band: amqp_bytes_t(len: 0, bytes: nil))
                return amqp_send_method(connection, channel, AMQP_CHANNEL_OPEN_METHOD, &method)
            case .qos(let prefetch):
                var method = amqp_basic_qos_t(prefetch_size: 0, prefetch_count: prefetch, global: 0)
                return amqp_send_method(connection, channel, AMQP_BASIC_QOS_METHOD, &method)
            case .consume(let tag):
                var method = amqp_basic_consume_t(
                    ticket: 0, queue: arena.bytes(consumers[tag]?.queue ?? ""), consumer_tag: arena.bytes(tag),
                    no_local: 0, no_ack: 0, exclusive: 0, nowait: 0,
                    arguments: amqp_table_t(num_entries: 0, entries: nil)
                )
                return amqp_send_method(connection, channel, AMQP_BASIC_CONSUME_METHOD, &method)
            case .cancel(let tag):
                var method = amqp_basic_cancel_t(consumer_tag: arena.bytes(tag), nowait: 0)
                return amqp_send_method(connection, channel, AMQP_BASIC_CANCEL_METHOD, &method)
            case .declare(let spec, _):
                var arguments: [(key: String, value: String)] = []
                if let target = spec.deadLetterTo {
                    arguments = [("x-dead-letter-exchange", ""), ("x-dead-letter-routing-key", target)]
                }
                var method = amqp_queue_declare_t(
                    ticket: 0, queue: arena.bytes(spec.name), passive: 0, durable: 1, exclusive: 0, auto_delete: 0,
                    nowait: 0, arguments: arena.table(arguments))
                return amqp_send_method(connection, channel, AMQP_QUEUE_DECLARE_METHOD, &method)
            case .inspect(let queue, _):
                var method = amqp_queue_declare_t(
                    ticket: 0, queue: arena.bytes(queue), passive: 1, durable: 0, exclusive: 0, auto_delete: 0,
                    nowait: 0, arguments: amqp_table_t(num_entries: 0, entries: nil))
                return amqp_send_method(connection, channel, AMQP_QUEUE_DECLARE_METHOD, &method)
            case .delete(let queue, _):
                var method = amqp_queue_delete_t(
                    ticket: 0, queue: arena.bytes(queue), if_unused: 0, if_empty: 0, nowait: 0)
                return amqp_send_method(connection, channel, AMQP_QUEUE_DELETE_METHOD, &method)
            }
        }
    }

    /// A method on the consume or admin channel that is not a delivery: the reply to the request in flight.
    func handleReply(_ id: amqp_method_number_t, _ decoded: UnsafeMutableRawPointer?, on queue: RPCQueue) {
        guard queue.inFlight, let request = queue.requests.first, request.reply == id else {
            connectionLost("unexpected method \(id) on channel \(queue.channel)")
            return
        }
        queue.requests.removeFirst()
        queue.inFlight = false
        complete(request, decoded)
        pump(queue)
    }

    private func complete(_ request: RPCRequest, _ decoded: UnsafeMutableRawPointer?) {
        switch request {
        case .openChannel, .qos:
            break
        case .consume(let tag):
            guard let consumer = consumers[tag] else { return }
            if consumer.state == .starting { consumer.state = .active }
            consumer.started?.resume()
            consumer.started = nil
            logger.debug("broker consumer started", metadata: ["broker.queue": "\(consumer.queue)"])
        case .cancel(let tag):
            removeConsumer(tag)
            resumeStopWaitersIfDone()
        case .declare(_, let batch):
            batch.remaining -= 1
            if batch.remaining == 0 {
                batch.continuation?.resume()
                batch.continuation = nil
            }
        case .inspect(_, .report(let continuation)):
            guard let decoded else {
                continuation.resume(returning: nil)
                return
            }
            let reply = decoded.decoded(as: amqp_queue_declare_ok_t.self)
            continuation.resume(returning: (messages: Int(reply.message_count), consumers: Int(reply.consumer_count)))
        case .inspect(_, .startConsumer(let tag)):
            guard let consumer = consumers[tag] else { return }
            if consumer.state == .cancelling {
                removeConsumer(tag)
                resumeStopWaitersIfDone()
            } else {
                consumer.state = .starting
                consumeRPC.requests += [.qos(prefetch: consumer.prefetch), .consume(tag: tag)]
                pump(consumeRPC)
            }
        case .delete(_, let continuation):
            continuation.resume()
        }
    }

    /// The broker closed the admin channel: the request in flight caused it. Fail (or, for a missing queue,
    /// answer) that request, re-open the channel and go on with the rest.
    func adminChannelClosed(code: UInt16, text: String) {
        let failed = adminRPC.inFlight ? adminRPC.requests.removeFirst() : nil
        adminRPC.inFlight = false
        adminRPC.requests.insert(.openChannel, at: 0)
        let notFound = code == UInt16(AMQP_NOT_FOUND)
        let refused = BrokerError.operationRefused(code: code, text: text)
        switch failed {
        case .declare(let spec, let batch):
            logger.warning(
                "broker refused queue.declare",
                metadata: ["broker.queue": "\(spec.name)", "broker.error": "\(refused)"])
            batch.continuation?.resume(throwing: refused)
            batch.continuation = nil
        case .inspect(_, .report(let continuation)):
            if notFound { continuation.resume(returning: nil) } else { continuation.resume(throwing: refused) }
        case .inspect(let queue, .startConsumer(let tag)):
            if let consumer = consumers[tag] {
                consumer.started?.resume(throwing: notFound ? BrokerError.queueNotFound(queue) : refused)
                consumer.started = nil
                removeConsumer(tag)
                resumeStopWaitersIfDone()
            }
        case .delete(_, let continuation):
            if notFound { continuation.resume() } else { continuation.resume(throwing: refused) }
        case .openChannel, .qos, .consume, .cancel, nil:
            logger.error("broker closed the admin channel", metadata: ["broker.error": "\(refused)"])
        }
        pump(adminRPC)
    }

    /// The broker closed the consume channel (a consume refused, or an ack with an unknown tag): drop the
    /// consumer that caused it, re-open the channel under a new generation and re-create the other consumers.
    func consumeChannelClosed(code: UInt16, text: String) {
        let failed = consumeRPC.inFlight ? consumeRPC.requests.first : nil
        let refused = BrokerError.operationRefused(code: code, text: text)
        if case .consume(let tag) = failed, let consumer = consumers[tag] {
            let error = code == UInt16(AMQP_NOT_FOUND) ? BrokerError.queueNotFound(consumer.queue) : refused
            if let started = consumer.started {
                started.resume(throwing: error)
                consumer.started = nil
            } else {
                logger.error(
                    "broker consumer failed",
                    metadata: ["broker.queue": "\(consumer.queue)", "broker.error": "\(error)"])
            }
            removeConsumer(tag)
        } else {
            logger.warning("broker closed the consume channel", metadata: ["broker.error": "\(refused)"])
        }
        consumeChannelLost()
        consumeRPC.requests = [.openChannel]
        for tag in consumerOrder {
            guard let consumer = consumers[tag], consumer.state == .starting else { continue }
            consumeRPC.requests += [.qos(prefetch: consumer.prefetch), .consume(tag: tag)]
        }
        pump(consumeRPC)
    }

    /// The consume channel is gone (with the connection or alone): its delivery tags are void, consumers
    /// being cancelled are done, active ones must be started again.
    func consumeChannelLost() {
        generation += 1
        partial = nil
        consumeRPC.reset()
        for tag in consumerOrder {
            guard let consumer = consumers[tag] else { continue }
            switch consumer.state {
            case .cancelling: removeConsumer(tag)
            case .active: consumer.state = .starting
            case .checking, .starting: break
            }
        }
        resumeStopWaitersIfDone()
    }

    func cancelConsumer(_ tag: String) {
        guard let consumer = consumers[tag], consumer.state != .cancelling else { return }
        let previous = consumer.state
        consumer.state = .cancelling
        if connection == nil {
            removeConsumer(tag)
        } else if previous != .checking {
            // A consumer still being checked is finished when the passive declare answers.
            consumeRPC.requests.append(.cancel(tag: tag))
        }
    }

    /// Forgets a consumer and finishes its stream (a pending `consume` call returns the finished stream).
    func removeConsumer(_ tag: String) {
        guard let consumer = consumers.removeValue(forKey: tag) else { return }
        consumerOrder.removeAll { $0 == tag }
        consumer.stream.finish()
        consumer.started?.resume()
        consumer.started = nil
    }

    func resumeStopWaitersIfDone() {
        guard !stopWaiters.isEmpty, !consumers.values.contains(where: { $0.state == .cancelling }) else { return }
        let waiters = stopWaiters
        stopWaiters = []
        for waiter in waiters { waiter.resume() }
    }

    /// Completes a request that will never be sent because the connection is closed for good.
    func abandon(_ request: RPCRequest) {
        let closed = BrokerError.connectionClosed
        switch request {
        case .declare(_, let batch):
            batch.continuation?.resume(throwing: closed)
            batch.continuation = nil
        case .inspect(_, .report(let continuation)): continuation.resume(throwing: closed)
        case .delete(_, let continuation): continuation.resume(throwing: closed)
        case .openChannel, .qos, .consume, .cancel, .inspect(_, .startConsumer): break
        }
    }
}
