import Foundation
import NIOCore
import NIOHTTP1
import NIOPosix

/// A request as the fake server saw it.
struct RecordedRequest: Sendable {
    var method: String
    var path: String
    var headers: [(name: String, value: String)]
    var body: String

    /// The first value of a header, by case-insensitive name.
    func header(_ name: String) -> String? {
        headers.first { $0.name.lowercased() == name.lowercased() }?.value
    }

    /// The body parsed as a JSON object (empty when it is not one).
    var json: [String: Any] {
        ((try? JSONSerialization.jsonObject(with: Data(body.utf8))) as? [String: Any]) ?? [:]
    }
}

/// What the fake server does with one request.
struct FakeResponse: Sendable {
    var status: Int = 200
    var headers: [(name: String, value: String)] = []
    var body: String = ""
    /// Wait this long before answering.
    var delay: TimeAmount = .zero
    /// Close the connection instead of answering.
    var hangUp = false

    /// A reply whose body is `object` serialised as JSON.
    static func json(_ object: Any, status: Int = 200, headers: [(name: String, value: String)] = []) -> FakeResponse {
        let data = (try? JSONSerialization.data(withJSONObject: object)) ?? Data("{}".utf8)
        return FakeResponse(status: status, headers: headers, body: String(decoding: data, as: UTF8.self))
    }

    /// `response`, sent after `delay`.
    static func delayed(_ response: FakeResponse, by delay: TimeAmount) -> FakeResponse {
        var delayed = response
        delayed.delay = delay
        return delayed
    }

    /// Drop the connection without a word.
    static let hangUpResponse = FakeResponse(hangUp: true)
}

/// A value behind a lock, shared between the event loop and the test.
final class Locked<Value>: @unchecked Sendable {
    private let lock = NSLock()
    private var value: Value

    init(_ value: Value) { self.value = value }

    func withLock<T>(_ body: (inout Value) throws -> T) rethrows -> T {
        lock.lock()
        defer { lock.unlock() }
        return try body(&value)
    }

    var current: Value { withLock { $0 } }
}

/// A minimal HTTP/1.1 server on 127.0.0.1 with an ephemeral port. It records every request and
/// answers each one with whatever the test's handler returns.
final class FakeProviderServer: Sendable {
    typealias Handler = @Sendable (RecordedRequest) -> FakeResponse

    private let group: MultiThreadedEventLoopGroup
    private let channel: any Channel
    private let log: Locked<[RecordedRequest]>
    /// `http://127.0.0.1:<port>`, without a trailing slash.
    let baseURL: String

    private init(group: MultiThreadedEventLoopGroup, channel: any Channel, log: Locked<[RecordedRequest]>, port: Int) {
        self.group = group
        self.channel = channel
        self.log = log
        self.baseURL = "http://127.0.0.1:\(port)"
    }

    static func start(_ handler: @escaping Handler) async throws -> FakeProviderServer {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let log = Locked<[RecordedRequest]>([])
        do {
            let channel = try await ServerBootstrap(group: group)
                .serverChannelOption(.backlog, value: 256)
                .childChannelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture {
                        try channel.pipeline.syncOperations.configureHTTPServerPipeline()
                        try channel.pipeline.syncOperations.addHandler(ExchangeHandler(log: log, handler: handler))
                    }
                }
                .bind(host: "127.0.0.1", port: 0).get()
            guard let port = channel.localAddress?.port else {
                throw FakeServerError(message: "the fake server has no port")
            }
            return FakeProviderServer(group: group, channel: channel, log: log, port: port)
        } catch {
            try? await group.shutdownGracefully()
            throw error
        }
    }

    /// Starts a server, runs `body` with it and stops it, also when `body` throws.
    static func with<T>(
        _ handler: @escaping Handler, _ body: (FakeProviderServer) async throws -> T
    ) async throws -> T {
        let server = try await start(handler)
        do {
            let result = try await body(server)
            try await server.stop()
            return result
        } catch {
            try? await server.stop()
            throw error
        }
    }

    /// Every request so far, in arrival order.
    var requests: [RecordedRequest] { log.current }

    func stop() async throws {
        try? await channel.close()
        try await group.shutdownGracefully()
    }
}

struct FakeServerError: Error, CustomStringConvertible {
    let message: String
    var description: String { message }
}

/// Collects one request (head, body, end), records it, then answers as scripted.
private final class ExchangeHandler: ChannelInboundHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    private let log: Locked<[RecordedRequest]>
    private let handler: FakeProviderServer.Handler
    private var head: HTTPRequestHead?
    private var body = ByteBuffer()

    init(log: Locked<[RecordedRequest]>, handler: @escaping FakeProviderServer.Handler) {
        self.log = log
        self.handler = handler
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let head):
            self.head = head
            body.clear()
        case .body(var chunk):
            body.writeBuffer(&chunk)
        case .end:
            guard let head else { return }
            self.head = nil
            let request = RecordedRequest(
                method: head.method.rawValue, path: head.uri, headers: head.headers.map { ($0.name, $0.value) },
                body: String(buffer: body))
            log.withLock { $0.append(request) }
            let response = handler(request)
            let keepAlive = head.isKeepAlive
            if response.delay > .zero {
                context.eventLoop.assumeIsolated().scheduleTask(in: response.delay) {
                    self.answer(response, keepAlive: keepAlive, context: context)
                }
            } else {
                answer(response, keepAlive: keepAlive, context: context)
            }
        }
    }

    private func answer(_ response: FakeResponse, keepAlive: Bool, context: ChannelHandlerContext) {
        // The client may have given up (timed out) while we waited.
        guard context.channel.isActive else { return }
        if response.hangUp {
            context.close(promise: nil)
            return
        }
        let bytes = ByteBuffer(string: response.body)
        var headers = HTTPHeaders(response.headers.map { ($0.name, $0.value) })
        headers.replaceOrAdd(name: "content-length", value: String(bytes.readableBytes))
        if !headers.contains(name: "content-type") { headers.add(name: "content-type", value: "application/json") }
        if !keepAlive { headers.replaceOrAdd(name: "connection", value: "close") }
        let status = HTTPResponseStatus(statusCode: response.status)
        let responseHead = HTTPResponseHead(version: .http1_1, status: status, headers: headers)
        context.write(wrapOutboundOut(.head(responseHead)), promise: nil)
        context.write(wrapOutboundOut(.body(.byteBuffer(bytes))), promise: nil)
        context.writeAndFlush(wrapOutboundOut(.end(nil))).assumeIsolated().whenComplete { _ in
            if !keepAlive { context.close(promise: nil) }
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        context.close(promise: nil)
    }
}
