import Hummingbird
import NIOCore

/// The request context of `SimServer`: it keeps the connection, so a `reset` fault can close it and a `hang`
/// fault can end when the client goes away.
public struct SimRequestContext: RequestContext {
    public var coreContext: CoreRequestContextStorage
    let channel: any Channel

    public init(source: ApplicationRequestContextSource) {
        self.coreContext = .init(source: source)
        self.channel = source.channel
    }

    /// Prompts can be long; allow bodies up to 64 MiB (Hummingbird's default is 2 MiB).
    public var maxUploadSize: Int { 64 << 20 }
}
