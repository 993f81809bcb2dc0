import CRabbitMQ
import ConflictScope

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// C memory for one outgoing method or message: strings and tables copied into malloc'd blocks that are
/// freed with the arena. Keep the arena alive across the C call (`withExtendedLifetime`).
final class CArena {
    private var blocks: [UnsafeMutableRawPointer] = []

    deinit {
        for block in blocks { free(block) }
    }

    func bytes(_ string: String) -> amqp_bytes_t {
        bytes(Array(string.utf8))
    }

    func bytes(_ array: [UInt8]) -> amqp_bytes_t {
        guard !array.isEmpty, let block = malloc(array.count) else { return amqp_bytes_t(len: 0, bytes: nil) }
        blocks.append(block)
        array.withUnsafeBytes { block.copyMemory(from: $0.baseAddress!, byteCount: $0.count) }
        return amqp_bytes_t(len: array.count, bytes: block)
    }

    /// A table whose values are all UTF-8 strings (field kind 'S').
    func table(_ entries: [(key: String, value: String)]) -> amqp_table_t {
        let size = MemoryLayout<amqp_table_entry_t>.stride * entries.count
        guard !entries.isEmpty, let block = malloc(size) else { return amqp_table_t(num_entries: 0, entries: nil) }
        blocks.append(block)
        let typed = block.bindMemory(to: amqp_table_entry_t.self, capacity: entries.count)
        for (index, entry) in entries.enumerated() {
            var value = amqp_field_value_t()
            value.kind = UInt8(AMQP_FIELD_KIND_UTF8.rawValue)
            value.value.bytes = bytes(entry.value)
            (typed + index).initialize(to: amqp_table_entry_t(key: bytes(entry.key), value: value))
        }
        return amqp_table_t(num_entries: Int32(entries.count), entries: typed)
    }
}

extension amqp_bytes_t {
    /// A copy of the bytes in Swift memory.
    var array: [UInt8] {
        guard len > 0, let bytes else { return [] }
        return Array(UnsafeRawBufferPointer(start: bytes, count: len))
    }

    /// The bytes decoded as UTF-8 (invalid sequences replaced).
    var string: String {
        guard len > 0, let bytes else { return "" }
        return String(decoding: UnsafeRawBufferPointer(start: bytes, count: len), as: UTF8.self)
    }
}

extension amqp_table_t {
    /// The entries with scalar values, as text: strings and byte strings as they are, numbers in decimal,
    /// booleans as "true"/"false". Nested tables, arrays, decimals and voids are left out.
    var stringValues: [String: String] {
        var result: [String: String] = [:]
        for index in 0..<Int(max(num_entries, 0)) {
            let entry = entries[index]
            if let text = entry.value.text { result[entry.key.string] = text }
        }
        return result
    }
}

extension amqp_field_value_t {
    var text: String? {
        let field = value
        switch UInt32(kind) {
        case AMQP_FIELD_KIND_UTF8.rawValue, AMQP_FIELD_KIND_BYTES.rawValue: return field.bytes.string
        case AMQP_FIELD_KIND_BOOLEAN.rawValue: return field.boolean != 0 ? "true" : "false"
        case AMQP_FIELD_KIND_I8.rawValue: return String(field.i8)
        case AMQP_FIELD_KIND_U8.rawValue: return String(field.u8)
        case AMQP_FIELD_KIND_I16.rawValue: return String(field.i16)
        case AMQP_FIELD_KIND_U16.rawValue: return String(field.u16)
        case AMQP_FIELD_KIND_I32.rawValue: return String(field.i32)
        case AMQP_FIELD_KIND_U32.rawValue: return String(field.u32)
        case AMQP_FIELD_KIND_I64.rawValue: return String(field.i64)
        case AMQP_FIELD_KIND_U64.rawValue, AMQP_FIELD_KIND_TIMESTAMP.rawValue: return String(field.u64)
        case AMQP_FIELD_KIND_F32.rawValue: return String(field.f32)
        case AMQP_FIELD_KIND_F64.rawValue: return String(field.f64)
        default: return nil
        }
    }
}

extension UnsafeMutableRawPointer {
    /// The decoded method or properties struct a frame points to (allocated by rabbitmq-c, 8-byte aligned).
    func decoded<T>(as type: T.Type) -> T { assumingMemoryBound(to: T.self).pointee }
}

/// rabbitmq-c's text for a status code.
func amqpStatusText(_ status: Int32) -> String {
    String(cString: amqp_error_string2(status))
}

/// A one-line description of an RPC reply that is not AMQP_RESPONSE_NORMAL.
func amqpReplyText(_ reply: amqp_rpc_reply_t) -> String {
    switch reply.reply_type {
    case AMQP_RESPONSE_NORMAL: return "ok"
    case AMQP_RESPONSE_LIBRARY_EXCEPTION: return amqpStatusText(reply.library_error)
    case AMQP_RESPONSE_SERVER_EXCEPTION:
        guard let decoded = reply.reply.decoded else { return "server exception" }
        switch reply.reply.id {
        case AMQP_CONNECTION_CLOSE_METHOD:
            let close = decoded.decoded(as: amqp_connection_close_t.self)
            return "connection.close \(close.reply_code) \(close.reply_text.string)"
        case AMQP_CHANNEL_CLOSE_METHOD:
            let close = decoded.decoded(as: amqp_channel_close_t.self)
            return "channel.close \(close.reply_code) \(close.reply_text.string)"
        default: return "server exception (method \(reply.reply.id))"
        }
    default: return "no reply"
    }
}
