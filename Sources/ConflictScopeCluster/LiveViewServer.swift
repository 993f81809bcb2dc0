import ConflictScope
import Foundation
import Hummingbird
import Logging
import NIOCore

/// The live view's HTTP endpoints (`run --serve PORT`, and a cluster role's metrics port): `GET /`, the
/// page, and `GET /status.json`, the same snapshot as JSON. Each request takes a fresh snapshot.
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
        addRoutes(to: router, snapshot: snapshot)
        return Application(
            router: router, configuration: .init(address: .hostname(host, port: port), serverName: "conflictscope"),
            logger: logger)
    }

    /// `GET /` and `GET /status.json` (also served on a cluster role's metrics port).
    static func addRoutes(
        to router: Router<BasicRequestContext>, snapshot: @escaping @Sendable () async -> LiveSnapshot
    ) {
        router.get("/") { _, _ in
            response(await snapshot().html(), contentType: "text/html; charset=utf-8")
        }
        router.get("/status.json") { _, _ in
            response(await snapshot().json.serialized(), contentType: "application/json")
        }
    }

    private static func response(_ text: String, contentType: String) -> Response {
        Response(
            status: .ok, headers: [.contentType: contentType], body: ResponseBody(byteBuffer: ByteBuffer(string: text)))
    }
}
