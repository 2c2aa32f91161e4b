/// Every failure the engine reports. The C ABI maps each case to a status code and
/// keeps `description` as the thread's last-error message.
public enum LoRANASError: Error, CustomStringConvertible, Equatable {
    /// A caller passed something malformed: a wrong shape, an out-of-range id, a NULL pointer.
    case invalidArgument(String)
    /// A file could not be opened, read or written.
    case io(String)
    /// A file was readable but its contents are not what the format requires.
    case format(String)
    /// A named thing (tensor, module, key) does not exist.
    case notFound(String)
    /// A loss or gradient became NaN or infinite.
    case numeric(String)
    /// The engine does not support this (yet); the message says what.
    case unsupported(String)

    public var description: String {
        switch self {
        case .invalidArgument(let m): return "invalid argument: \(m)"
        case .io(let m): return "I/O error: \(m)"
        case .format(let m): return "format error: \(m)"
        case .notFound(let m): return "not found: \(m)"
        case .numeric(let m): return "numeric error: \(m)"
        case .unsupported(let m): return "unsupported: \(m)"
        }
    }
}

@inline(__always)
public func require(_ condition: Bool, _ message: @autoclosure () -> String) throws {
    if !condition { throw LoRANASError.invalidArgument(message()) }
}
