/// FNV-1a based stable hashes (Swift's `Hasher` is randomised per process).
public enum StableHash {
    public static let fnvOffsetBasis: UInt64 = 0xCBF2_9CE4_8422_2325

    public static func fnv64(_ text: String, basis: UInt64 = fnvOffsetBasis) -> UInt64 {
        var hash = basis
        for byte in text.utf8 {
            hash ^= UInt64(byte)
            hash &*= 0x0000_0100_0000_01B3
        }
        return hash
    }

    /// Two independent 64-bit hashes, as 32 hex digits.
    public static func hex128(_ text: String) -> String {
        let high = fnv64(text)
        let low = fnv64(text, basis: 0x6C62_272E_07BB_0142)
        return hex(high) + hex(low)
    }

    static func hex(_ value: UInt64) -> String {
        let digits = String(value, radix: 16)
        return String(repeating: "0", count: 16 - digits.count) + digits
    }
}
