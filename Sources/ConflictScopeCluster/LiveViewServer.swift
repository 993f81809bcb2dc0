import ConflictScope
import Foundation
import Hummingbird
import Logging
import NIOCore

/// The live view's HTTP endpoints (`run --serve PORT`): `GET /`, the page, and `GET /status.json`, the
/// same snapshot as JSON. Each request takes a fresh snapshot.
public enum LiveViewServer {
    /// Serves until cancelled; throws when it cannot listen.
    public static func serve(
        host: String, port: Int, logger: Logger, snapshot: @escaping @Sendable () async -> LiveSnapshot
    ) async throws {
        try await application(host: host, port: port, logger: logger, snapshot: snapshot).runService(
            gracefulShutdownSignals: [])
    }

    static func application(
        host: String, port: Int, logger: Logger, snapshot: @escaping @Sendable () async -> LiveSnapshot
    ) -> some ApplicationProtocol {
        let router = Router()
        router.get("/") { _, _ in
            response(await snapshot().html(), contentType: "text/html; charset=utf-8")
        }
        router.get("/status.json") { _, _ in
            response(await snapshot().json.serialized(), contentType: "application/json")
        }
        return Application(
            router: router, configuration: .init(address: .hostname(host, port: port), serverName: "conflictscope"),
            logger: logger)
    }

    private static func response(_ text: String, contentType: String) -> Response {
        Response(
            status: .ok, headers: [.contentType: contentType], body: ResponseBody(byteBuffer: ByteBuffer(string: text)))
    }
}
