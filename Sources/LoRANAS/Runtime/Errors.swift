import Foundation
#if canImport(Glibc)
    import Glibc
#endif

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

extension LoRANASError {
    /// An I/O error for `what`, with the errno text and number of a failed POSIX call.
    public static func posix(_ what: String, errno code: Int32 = errno) -> LoRANASError {
        .io("\(what): \(String(cString: strerror(code))) (errno \(code))")
    }

    /// An I/O error for `what` from an error Foundation raised, with its errno when it has one
    /// (Python turns "(errno N)" into the matching OSError subclass).
    public static func fileSystem(_ what: String, _ error: Error) -> LoRANASError {
        if let e = error as? LoRANASError { return e }
        if let p = error as? POSIXError { return posix(what, errno: p.code.rawValue) }
        if let c = error as? CocoaError, let p = c.underlying as? POSIXError {
            return posix(what, errno: p.code.rawValue)
        }
        return .io("\(what): \(error.localizedDescription)")
    }
}

extension LoRANASError {
    /// The same error with `prefix` before its message (where it happened: a file and line, a record).
    public func prefixed(_ prefix: String) -> LoRANASError {
        switch self {
        case .invalidArgument(let m): return .invalidArgument(prefix + m)
        case .io(let m): return .io(prefix + m)
        case .format(let m): return .format(prefix + m)
        case .notFound(let m): return .notFound(prefix + m)
        case .numeric(let m): return .numeric(prefix + m)
        case .unsupported(let m): return .unsupported(prefix + m)
        }
    }
}
