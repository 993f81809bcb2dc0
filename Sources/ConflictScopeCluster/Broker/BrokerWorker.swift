import CRabbitMQ
import ConflictScope
import Foundation
import Logging

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// Channel numbers on every connection.
enum BrokerChannel {
    /// Publishing, in confirm mode.
    static let publish: amqp_channel_t = 1
    /// Consumers: basic.qos, basic.consume / cancel, deliveries, acks and rejects.
    static let consume: amqp_channel_t = 2
    /// Queue administration. Its channel errors (a passive declare of a missing queue closes the channel)
    /// are repaired by re-opening this channel alone, without touching publishes or deliveries.
    static let admin: amqp_channel_t = 3
}

/// Owns one rabbitmq-c connection on a dedicated OS thread (rabbitmq-c connections must never be used from
/// two threads, and its calls block). The thread loops: run the commands queued in the mailbox, poll the
/// socket and the mailbox's wake pipe for at most 50 ms, read the frames that arrived. Every read goes through
/// `amqp_simple_wait_frame_noblock`, which also sends and checks heartbeats.
///
/// Synchronous AMQP methods (declare, qos, consume, cancel, delete) are never sent with `amqp_simple_rpc`:
/// they are sent with `amqp_send_method` and their replies are picked out of the same frame loop that handles
/// deliveries and publisher confirms, so nothing else stalls (or is queued inside the library) while a reply
/// is outstanding. At most one such method is in flight per channel (`RPCQueue`).
final class BrokerWorker: @unchecked Sendable {
    // @unchecked Sendable: BrokerConnection.init hands the worker to its thread and keeps no reference; from
    // then on only that thread touches the worker and its C connection handle. Swift callers reach it solely
    // through `mailbox`, which is lock-protected.

    let settings: BrokerSettings
    let logger: Logger
    let mailbox: BrokerMailbox

    /// The live connection, nil while disconnected.
    var connection: amqp_connection_state_t?
    /// Bumped whenever the consume channel is (re)opened; delivery tags of older generations are void. Starts at
    /// a random value so that a delivery acked on another connection by mistake is dropped as well.
    var generation = UInt64.random(in: 0..<(1 << 62))

    // Publishing.
    /// The publish sequence number the broker will assign to our next message on this channel.
    var nextSequence: UInt64 = 1
    /// No message with a smaller sequence number is still waiting for its confirm.
    var lowestUnconfirmed: UInt64 = 1
    var unconfirmed: [UInt64: OutgoingMessage] = [:]
    /// Messages to publish once connected, in order.
    var outbox: [OutgoingMessage] = []

    // Consuming.
    var consumers: [String: Consumer] = [:]
    var consumerOrder: [String] = []
    var stopWaiters: [CheckedContinuation<Void, Never>] = []
    /// The delivery whose content frames are being read.
    var partial: PartialDelivery?

    // Synchronous methods.
    let consumeRPC = RPCQueue(channel: BrokerChannel.consume)
    let adminRPC = RPCQueue(channel: BrokerChannel.admin)

    // Reconnecting.
    private var nextAttempt = ContinuousClock.now
    private var backoff: Duration = .milliseconds(100)
    private var failedAttempts = 0

    init(settings: BrokerSettings, logger: Logger, mailbox: BrokerMailbox) {
        self.settings = settings
        self.logger = logger
        self.mailbox = mailbox
    }

    // MARK: Loop

    func run() {
        logger.debug("broker thread started", metadata: ["broker.url": "\(settings)"])
        while !mailbox.isCloseRequested {
            if connection == nil {
                runDisconnected()
            } else {
                runConnected()
            }
        }
        shutDown()
    }

    private func runDisconnected() {
        handle(mailbox.takeCommands())
        guard !mailbox.isCloseRequested else { return }
        guard ContinuousClock.now >= nextAttempt else {
            waitForWakeup(until: nextAttempt)
            return
        }
        if connect() {
            if failedAttempts > 0 { logger.info("broker connected", metadata: ["broker.url": "\(settings)"]) }
            failedAttempts = 0
            backoff = .milliseconds(100)
            didConnect()
        } else {
            failedAttempts += 1
            nextAttempt = .now + backoff
            backoff = min(backoff * 2, .seconds(2))
        }
    }

    private func runConnected() {
        handle(mailbox.takeCommands())
        pump(consumeRPC)
        pump(adminRPC)
        guard let connection else { return }
        if amqp_frames_enqueued(connection) == 0 && amqp_data_in_buffer(connection) == 0 {
            waitForInput(socket: amqp_socket_get_sockfd(amqp_get_socket(connection)), milliseconds: 50)
        }
        readFrames(limit: 256)
    }

    /// Reads and handles the frames that are already available, up to `limit`.
    private func readFrames(limit: Int) {
        for _ in 0..<limit {
            guard let connection else { return }
            var frame = amqp_frame_t()
            // A zero timeout would skip rabbitmq-c's missed-heartbeat check; one microsecond keeps it.
            var timeout = timeval(tv_sec: 0, tv_usec: 1)
            let status = amqp_simple_wait_frame_noblock(connection, &frame, &timeout)
            if status == AMQP_STATUS_TIMEOUT.rawValue { return }
            guard status == AMQP_STATUS_OK.rawValue else {
                connectionLost("read failed: \(amqpStatusText(status))")
                return
            }
            handleFrame(frame)
            // Every frame's data has been copied out by now, so the library's buffers can be recycled.
            if let current = self.connection { amqp_maybe_release_buffers(current) }
        }
    }

    /// Sleeps until the socket is readable, a command arrives, or the time is up.
    private func waitForInput(socket: Int32, milliseconds: Int32) {
        var fds = [
            pollfd(fd: socket, events: Int16(POLLIN), revents: 0),
            pollfd(fd: mailbox.wakeDescriptor, events: Int16(POLLIN), revents: 0),
        ]
        if poll(&fds, nfds_t(fds.count), milliseconds) > 0 && fds[1].revents != 0 {
            mailbox.drainWakeups()
        }
    }

    private func waitForWakeup(until deadline: ContinuousClock.Instant) {
        let remaining = (deadline - .now) / .milliseconds(1)
        var fds = [pollfd(fd: mailbox.wakeDescriptor, events: Int16(POLLIN), revents: 0)]
        if poll(&fds, 1, Int32(max(0, min(remaining.rounded(.up), 60_000)))) > 0 {
            mailbox.drainWakeups()
        }
    }

    // MARK: Connecting

    /// Opens the socket, logs in, opens the three channels and puts the publish channel in confirm mode.
    /// Nothing else is in flight yet, so the library's blocking RPC helpers are safe here.
    private func connect() -> Bool {
        guard let state = amqp_new_connection() else { return false }
        func fail(_ step: String, _ error: String) -> Bool {
            let level: Logger.Level = failedAttempts == 0 ? .warning : .debug
            logger.log(
                level: level, "broker connect failed",
                metadata: ["broker.url": "\(settings)", "broker.step": "\(step)", "broker.error": "\(error)"])
            amqp_destroy_connection(state)
            return false
        }
        let socket: OpaquePointer
        if let tls = settings.tls {
            switch makeTLSSocket(state, tls) {
            case .success(let made): socket = made
            case .failure(let problem): return fail("tls", problem.description)
            }
        } else {
            guard let made = amqp_tcp_socket_new(state) else { return fail("socket", "out of memory") }
            socket = made
        }
        let seconds = max(settings.connectTimeoutSeconds, 0.001)
        var timeout = timeval(tv_sec: .init(seconds), tv_usec: .init(seconds.truncatingRemainder(dividingBy: 1) * 1e6))
        let opened = amqp_socket_open_noblock(socket, settings.host, Int32(settings.port), &timeout)
        guard opened == AMQP_STATUS_OK.rawValue else {
            if let tls = settings.tls, let reason = tlsFailureText(opened, tls) { return fail("tls", reason) }
            return fail("tcp", amqpStatusText(opened))
        }
        _ = amqp_set_handshake_timeout(state, &timeout)
        _ = amqp_set_rpc_timeout(state, &timeout)

        let login = crabbitmq_login_plain(
            state, settings.vhost, 0, 131_072, Int32(settings.heartbeatSeconds), settings.user, settings.password)
        guard login.reply_type == AMQP_RESPONSE_NORMAL else { return fail("login", amqpReplyText(login)) }
        for channel in [BrokerChannel.publish, BrokerChannel.consume, BrokerChannel.admin] {
            _ = amqp_channel_open(state, channel)
            let reply = amqp_get_rpc_reply(state)
            guard reply.reply_type == AMQP_RESPONSE_NORMAL else { return fail("channel.open", amqpReplyText(reply)) }
        }
        _ = amqp_confirm_select(state, BrokerChannel.publish)
        let reply = amqp_get_rpc_reply(state)
        guard reply.reply_type == AMQP_RESPONSE_NORMAL else { return fail("confirm.select", amqpReplyText(reply)) }
        amqp_maybe_release_buffers(state)
        connection = state
        return true
    }

    /// Re-publishes what was never confirmed (in order) and re-creates the consumers.
    private func didConnect() {
        mailbox.isConnected = true
        generation += 1
        nextSequence = 1
        lowestUnconfirmed = 1
        let pending = outbox
        outbox = []
        if !pending.isEmpty {
            logger.debug("broker publishing queued messages", metadata: ["broker.count": "\(pending.count)"])
        }
        for message in pending { publishNow(message) }
        guard connection != nil else { return }
        consumeRPC.reset()
        for tag in consumerOrder {
            guard let consumer = consumers[tag], consumer.state == .starting else { continue }
            consumeRPC.requests += [.qos(prefetch: consumer.prefetch), .consume(tag: tag)]
        }
    }

    /// Drops the connection after any socket, protocol or connection-level error; the loop reconnects.
    func connectionLost(_ reason: String) {
        guard let state = connection else { return }
        logger.warning("broker connection lost", metadata: ["broker.error": "\(reason)"])
        amqp_destroy_connection(state)
        connection = nil
        mailbox.isConnected = false
        partial = nil
        outbox = unconfirmed.keys.sorted().map { unconfirmed[$0]! } + outbox
        unconfirmed = [:]
        consumeRPC.reset()
        adminRPC.inFlight = false
        adminRPC.requests.removeAll {
            if case .openChannel = $0 { return true }
            return false
        }
        consumeChannelLost()
        nextAttempt = .now + backoff
        backoff = min(backoff * 2, .seconds(2))
    }

    private func shutDown() {
        for command in mailbox.closeAndTakeCommands() {
            switch command {
            case .ack, .reject: handle([command])
            default: command.abandon()
            }
        }
        if let state = connection {
            var timeout = timeval(tv_sec: 2, tv_usec: 0)
            _ = amqp_set_rpc_timeout(state, &timeout)
            _ = amqp_connection_close(state, AMQP_REPLY_SUCCESS)
            amqp_destroy_connection(state)
            connection = nil
        }
        let closed = BrokerError.connectionClosed
        for message in unconfirmed.keys.sorted().map({ unconfirmed[$0]! }) + outbox {
            message.continuation.resume(throwing: closed)
        }
        unconfirmed = [:]
        outbox = []
        for request in adminRPC.requests { abandon(request) }
        adminRPC.reset()
        consumeRPC.reset()
        for tag in consumerOrder {
            consumers[tag]?.started?.resume(throwing: closed)
            consumers[tag]?.started = nil
            removeConsumer(tag)
        }
        for waiter in stopWaiters { waiter.resume() }
        stopWaiters = []
        mailbox.markFinished()
        logger.debug("broker connection closed")
    }

    // MARK: Commands

    func handle(_ commands: [BrokerCommand]) {
        for command in commands {
            switch command {
            case .publish(let message):
                publishNow(message)
            case .ack(let tag, let deliveryGeneration, let done):
                settle(tag, deliveryGeneration) { amqp_basic_ack($0, BrokerChannel.consume, tag, 0) }
                done.resume()
            case .reject(let tag, let deliveryGeneration, let requeue, let done):
                settle(tag, deliveryGeneration) { amqp_basic_reject($0, BrokerChannel.consume, tag, requeue ? 1 : 0) }
                done.resume()
            case .declare(let specs, let continuation):
                guard !specs.isEmpty else {
                    continuation.resume()
                    continue
                }
                let batch = DeclareBatch(remaining: specs.count, continuation: continuation)
                adminRPC.requests += specs.map { .declare($0, batch) }
            case .queueState(let queue, let continuation):
                adminRPC.requests.append(.inspect(queue: queue, purpose: .report(continuation)))
            case .deleteQueue(let queue, let continuation):
                adminRPC.requests.append(.delete(queue: queue, continuation))
            case .consume(let request):
                consumers[request.tag] = Consumer(request)
                consumerOrder.append(request.tag)
                // A passive declare first: basic.consume on a missing queue would close the consume channel.
                adminRPC.requests.append(.inspect(queue: request.queue, purpose: .startConsumer(tag: request.tag)))
            case .cancelConsumer(let tag):
                cancelConsumer(tag)
                resumeStopWaitersIfDone()
            case .stopConsuming(let done):
                for tag in consumerOrder { cancelConsumer(tag) }
                stopWaiters.append(done)
                resumeStopWaitersIfDone()
            }
        }
    }

    /// Sends an ack or reject if the delivery came from the current consume channel; drops it otherwise.
    private func settle(_ tag: UInt64, _ deliveryGeneration: UInt64, _ send: (amqp_connection_state_t) -> Int32) {
        guard let connection, deliveryGeneration == generation else {
            logger.debug("broker settle skipped (delivery from an earlier connection)")
            return
        }
        let status = send(connection)
        if status != AMQP_STATUS_OK.rawValue { connectionLost("ack/reject failed: \(amqpStatusText(status))") }
    }

    // MARK: Publishing

    func publishNow(_ message: OutgoingMessage) {
        guard let connection else {
            outbox.append(message)
            return
        }
        let sequence = nextSequence
        nextSequence += 1
        unconfirmed[sequence] = message

        let arena = CArena()
        var properties = amqp_basic_properties_t()
        properties._flags = amqp_flags_t(AMQP_BASIC_DELIVERY_MODE_FLAG)
        properties.delivery_mode = UInt8(AMQP_DELIVERY_PERSISTENT.rawValue)
        if !message.headers.isEmpty {
            properties._flags |= amqp_flags_t(AMQP_BASIC_HEADERS_FLAG)
            properties.headers = arena.table(message.headers.sorted { $0.key < $1.key })
        }
        if let expiration = message.expiration {
            properties._flags |= amqp_flags_t(AMQP_BASIC_EXPIRATION_FLAG)
            properties.expiration = arena.bytes(expiration)
        }
        let routingKey = arena.bytes(message.queue)
        let status = withExtendedLifetime(arena) {
            message.body.withUnsafeBytes { body in
                // Mandatory: a message to no queue comes back (basic.return) instead of vanishing.
                amqp_basic_publish(
                    connection, BrokerChannel.publish, amqp_empty_bytes, routingKey, 1, 0, &properties,
                    amqp_bytes_t(len: body.count, bytes: UnsafeMutableRawPointer(mutating: body.baseAddress)))
            }
        }
        if status != AMQP_STATUS_OK.rawValue { connectionLost("publish failed: \(amqpStatusText(status))") }
    }

    /// The broker returned a mandatory message: no queue is named `queue`. Messages are handled in order, so it
    /// is the oldest unconfirmed one to that queue; its publisher fails, and the basic.ack that follows finds
    /// nothing to resolve.
    func returned(queue: String) {
        guard let sequence = unconfirmed.keys.sorted().first(where: { unconfirmed[$0]!.queue == queue }),
            let message = unconfirmed.removeValue(forKey: sequence)
        else { return }
        logger.warning("broker returned a message: no such queue", metadata: ["broker.queue": "\(queue)"])
        message.continuation.resume(throwing: BrokerError.unroutable(queue))
    }

    /// The broker closed the publish channel (it refused a message: too large, say). Publishing everything
    /// unconfirmed again would be refused again for ever, so those publishers fail with the broker's reason;
    /// the connection is then opened afresh.
    func publishChannelClosed(code: UInt16, text: String) {
        let refused = unconfirmed.keys.sorted().map { unconfirmed[$0]! }
        unconfirmed = [:]
        for message in refused {
            message.continuation.resume(throwing: BrokerError.operationRefused(code: code, text: text))
        }
        connectionLost("channel.close from broker on the publish channel: \(code) \(text)")
    }

    /// Resolves publishers on basic.ack / basic.nack; `multiple` covers every sequence number up to `tag`.
    func confirm(_ tag: UInt64, multiple: Bool, accepted: Bool) {
        func settle(_ message: OutgoingMessage) {
            if accepted {
                message.continuation.resume()
            } else {
                logger.warning("broker nacked a message", metadata: ["broker.queue": "\(message.queue)"])
                message.continuation.resume(throwing: BrokerError.publishRejected)
            }
        }
        if multiple {
            let last = min(tag, nextSequence - 1)
            var sequence = lowestUnconfirmed
            while sequence <= last {
                if let message = unconfirmed.removeValue(forKey: sequence) { settle(message) }
                sequence += 1
            }
        } else if let message = unconfirmed.removeValue(forKey: tag) {
            settle(message)
        }
        while lowestUnconfirmed < nextSequence && unconfirmed[lowestUnconfirmed] == nil { lowestUnconfirmed += 1 }
    }
}
