import CRabbitMQ
import ConflictScope
import Logging

/// A delivery whose header and body frames are still being read.
struct PartialDelivery {
    var consumerTag: String
    var deliveryTag: UInt64
    var redelivered: Bool
    var headers: [String: String] = [:]
    /// Known once the content header frame has arrived.
    var bodySize: Int?
    var body: [UInt8] = []
}

extension BrokerWorker {
    func handleFrame(_ frame: amqp_frame_t) {
        switch Int32(frame.frame_type) {
        case AMQP_FRAME_METHOD:
            handleMethod(frame.payload.method.id, frame.payload.method.decoded, channel: frame.channel)
        case AMQP_FRAME_HEADER:
            guard frame.channel == BrokerChannel.consume else { return }
            let header = frame.payload.properties
            var headers: [String: String] = [:]
            if let decoded = header.decoded {
                let properties = decoded.decoded(as: amqp_basic_properties_t.self)
                if properties._flags & amqp_flags_t(AMQP_BASIC_HEADERS_FLAG) != 0 {
                    headers = properties.headers.stringValues
                }
            }
            contentHeader(bodySize: Int(header.body_size), headers: headers)
        case AMQP_FRAME_BODY:
            guard frame.channel == BrokerChannel.consume else { return }
            contentBody(frame.payload.body_fragment)
        default:
            break
        }
    }

    private func handleMethod(_ id: amqp_method_number_t, _ decoded: UnsafeMutableRawPointer?, channel: amqp_channel_t)
    {
        guard let connection else { return }
        if id == AMQP_CONNECTION_CLOSE_METHOD, let decoded {
            let close = decoded.decoded(as: amqp_connection_close_t.self)
            var closeOk = amqp_connection_close_ok_t()
            _ = amqp_send_method(connection, 0, AMQP_CONNECTION_CLOSE_OK_METHOD, &closeOk)
            connectionLost("connection.close from broker: \(close.reply_code) \(close.reply_text.string)")
            return
        }
        if id == AMQP_CHANNEL_CLOSE_METHOD, let decoded {
            let close = decoded.decoded(as: amqp_channel_close_t.self)
            let code = close.reply_code
            let text = close.reply_text.string
            var closeOk = amqp_channel_close_ok_t()
            let status = amqp_send_method(connection, channel, AMQP_CHANNEL_CLOSE_OK_METHOD, &closeOk)
            guard status == AMQP_STATUS_OK.rawValue else {
                connectionLost("send failed: \(amqpStatusText(status))")
                return
            }
            switch channel {
            case BrokerChannel.admin: adminChannelClosed(code: code, text: text)
            case BrokerChannel.consume: consumeChannelClosed(code: code, text: text)
            case BrokerChannel.publish: publishChannelClosed(code: code, text: text)
            default: connectionLost("channel.close from broker on channel \(channel): \(code) \(text)")
            }
            return
        }
        switch channel {
        case BrokerChannel.publish:
            if id == AMQP_BASIC_ACK_METHOD, let decoded {
                let ack = decoded.decoded(as: amqp_basic_ack_t.self)
                confirm(ack.delivery_tag, multiple: ack.multiple != 0, accepted: true)
            } else if id == AMQP_BASIC_NACK_METHOD, let decoded {
                let nack = decoded.decoded(as: amqp_basic_nack_t.self)
                confirm(nack.delivery_tag, multiple: nack.multiple != 0, accepted: false)
            } else if id == AMQP_BASIC_RETURN_METHOD, let decoded {
                // Its content frames follow on this channel and are ignored; its basic.ack comes after.
                returned(queue: decoded.decoded(as: amqp_basic_return_t.self).routing_key.string)
            }
        case BrokerChannel.consume:
            if id == AMQP_BASIC_DELIVER_METHOD, let decoded {
                let deliver = decoded.decoded(as: amqp_basic_deliver_t.self)
                partial = PartialDelivery(
                    consumerTag: deliver.consumer_tag.string, deliveryTag: deliver.delivery_tag,
                    redelivered: deliver.redelivered != 0)
            } else if id == AMQP_BASIC_CANCEL_METHOD, let decoded {
                brokerCancelled(decoded.decoded(as: amqp_basic_cancel_t.self), connection)
            } else {
                handleReply(id, decoded, on: consumeRPC)
            }
        case BrokerChannel.admin:
            handleReply(id, decoded, on: adminRPC)
        default:
            break  // channel 0: connection.blocked / unblocked and the like need no answer
        }
    }

    /// The broker cancelled a consumer (its queue was deleted).
    private func brokerCancelled(_ cancel: amqp_basic_cancel_t, _ connection: amqp_connection_state_t) {
        let tag = cancel.consumer_tag.string
        if cancel.nowait == 0 {
            let arena = CArena()
            var cancelOk = amqp_basic_cancel_ok_t(consumer_tag: arena.bytes(tag))
            let status = withExtendedLifetime(arena) {
                amqp_send_method(connection, BrokerChannel.consume, AMQP_BASIC_CANCEL_OK_METHOD, &cancelOk)
            }
            guard status == AMQP_STATUS_OK.rawValue else {
                connectionLost("send failed: \(amqpStatusText(status))")
                return
            }
        }
        guard let consumer = consumers[tag] else { return }
        logger.warning("broker cancelled a consumer", metadata: ["broker.queue": "\(consumer.queue)"])
        removeConsumer(tag)
        resumeStopWaitersIfDone()
    }

    private func contentHeader(bodySize: Int, headers: [String: String]) {
        guard partial != nil, partial?.bodySize == nil else { return }
        partial?.bodySize = bodySize
        partial?.headers = headers
        partial?.body.reserveCapacity(bodySize)
        if bodySize == 0 { deliverPartial() }
    }

    private func contentBody(_ fragment: amqp_bytes_t) {
        guard let bodySize = partial?.bodySize else { return }
        if fragment.len > 0, let bytes = fragment.bytes {
            partial?.body.append(contentsOf: UnsafeRawBufferPointer(start: bytes, count: fragment.len))
        }
        if let received = partial?.body.count, received >= bodySize { deliverPartial() }
    }

    private func deliverPartial() {
        guard let complete = partial else { return }
        partial = nil
        var yielded = false
        if let consumer = consumers[complete.consumerTag] {
            let delivery = Delivery(
                queue: consumer.queue, body: complete.body, headers: complete.headers,
                redelivered: complete.redelivered, deliveryTag: complete.deliveryTag, generation: generation)
            if case .enqueued = consumer.stream.yield(delivery) { yielded = true }
        }
        guard !yielded, let connection else { return }
        // Nobody reads this consumer's stream any more: hand the message back to the queue.
        let status = amqp_basic_reject(connection, BrokerChannel.consume, complete.deliveryTag, 1)
        if status != AMQP_STATUS_OK.rawValue { connectionLost("reject failed: \(amqpStatusText(status))") }
    }
}
