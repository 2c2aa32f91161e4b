import CLoRANAS
import Foundation
import LoRANAS
#if canImport(Glibc)
    import Glibc
#endif

// Status codes come from loranas.h (the one place they are written).
let statusOK = Int32(LORANAS_OK)

/// The status code of an engine error.
func status(of e: LoRANASError) -> Int32 {
    let code: Int
    switch e {
    case .invalidArgument: code = LORANAS_ERR_INVALID_ARGUMENT
    case .io: code = LORANAS_ERR_IO
    case .format: code = LORANAS_ERR_FORMAT
    case .notFound: code = LORANAS_ERR_NOT_FOUND
    case .numeric: code = LORANAS_ERR_NUMERIC
    case .unsupported: code = LORANAS_ERR_UNSUPPORTED
    }
    return Int32(code)
}

/// The thread's last error message: one malloc'd C string per thread, replaced on each failure.
private let errorKey: pthread_key_t = {
    var key = pthread_key_t()
    pthread_key_create(&key) { free($0) }
    return key
}()

func setLastError(_ message: String) {
    free(pthread_getspecific(errorKey))
    pthread_setspecific(errorKey, strdup(message))
}

func lastErrorPointer() -> UnsafePointer<CChar> {
    if let p = pthread_getspecific(errorKey) { return UnsafePointer(p.assumingMemoryBound(to: CChar.self)) }
    return emptyString
}
private let emptyString: UnsafePointer<CChar> = UnsafePointer(strdup(""))

/// Runs `body`, turning every thrown error into a status code and the thread's last error.
/// This is the one place where Swift errors cross into C. A filesystem error that Foundation
/// raised becomes LORANAS_ERR_IO with its errno, as Python's OSError reports it.
func guarded(_ body: () throws -> Void) -> Int32 {
    do {
        try Engine.checkEnvironment()
        try body()
        return statusOK
    } catch let e as LoRANASError {
        setLastError(e.description)
        return status(of: e)
    } catch let e as BufferTooSmall {
        setLastError(e.message ?? "buffer too small: \(e.needed) bytes needed, including the NUL")
        return Int32(LORANAS_ERR_BUFFER_TOO_SMALL)
    } catch let e as CocoaError {
        return fileSystemError(e)
    } catch let e as POSIXError {
        return fileSystemError(e)
    } catch {
        setLastError("\(error)")
        return Int32(LORANAS_ERR_INVALID_ARGUMENT)
    }
}

private func fileSystemError(_ e: Error) -> Int32 {
    let path = (e as? CocoaError)?.filePath ?? "a file"
    let error = LoRANASError.fileSystem(path, e)
    setLastError(error.description)
    return status(of: error)
}

/// An output buffer too small for the result; `message` replaces the default (bytes of a string).
struct BufferTooSmall: Error {
    let needed: Int
    var message: String? = nil
}

/// Unwraps a required pointer argument.
func arg<T>(_ p: T?, _ name: String) throws -> T {
    guard let p else { throw LoRANASError.invalidArgument("\(name) is NULL") }
    return p
}

/// A C string argument as UTF-8 text; bytes that are not UTF-8 are an error, not replaced.
func string(_ p: UnsafePointer<CChar>?, _ name: String) throws -> String {
    let c = try arg(p, name)
    guard let s = String(validatingCString: c) else { throw LoRANASError.invalidArgument("\(name) is not valid UTF-8") }
    return s
}

/// A caller buffer of `count` elements: NULL is an error, and so is a count that is negative or
/// smaller than `needed`.
func buffer<T>(_ p: T?, _ name: String, count: Int64, needed: Int) throws -> T {
    try require(count >= 0, "\(name)_count must be non-negative, got \(count)")
    try require(count >= needed, "\(name) holds \(count) elements, \(needed) needed")
    return try arg(p, name)
}
