/// Why a `SimServer` could not be set up from a config.
public struct SimServerError: Error, CustomStringConvertible {
    public var description: String

    init(_ description: String) { self.description = description }
}
