import Foundation
import LoRANAS
#if canImport(Glibc)
import Glibc
#endif

// Status codes, mirrored from loranas.h.
let LORANAS_OK: Int32 = 0
let LORANAS_ERR_INVALID_ARGUMENT: Int32 = 1
let LORANAS_ERR_IO: Int32 = 2
let LORANAS_ERR_FORMAT: Int32 = 3
let LORANAS_ERR_NOT_FOUND: Int32 = 4
let LORANAS_ERR_NUMERIC: Int32 = 5
let LORANAS_ERR_UNSUPPORTED: Int32 = 6
let LORANAS_ERR_BUFFER_TOO_SMALL: Int32 = 7

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
/// This is the one place where Swift errors cross into C.
func guarded(_ body: () throws -> Void) -> Int32 {
    do {
        try body()
        return LORANAS_OK
    } catch let e as LoRANASError {
        setLastError(e.description)
        switch e {
        case .invalidArgument: return LORANAS_ERR_INVALID_ARGUMENT
        case .io: return LORANAS_ERR_IO
        case .format: return LORANAS_ERR_FORMAT
        case .notFound: return LORANAS_ERR_NOT_FOUND
        case .numeric: return LORANAS_ERR_NUMERIC
        case .unsupported: return LORANAS_ERR_UNSUPPORTED
        }
    } catch let e as BufferTooSmall {
        setLastError("buffer too small: \(e.needed) bytes needed, including the NUL")
        return LORANAS_ERR_BUFFER_TOO_SMALL
    } catch {
        setLastError("\(error)")
        return LORANAS_ERR_INVALID_ARGUMENT
    }
}

struct BufferTooSmall: Error { let needed: Int }

/// Unwraps a required pointer argument.
func arg<T>(_ p: T?, _ name: String) throws -> T {
    guard let p else { throw LoRANASError.invalidArgument("\(name) is NULL") }
    return p
}

func string(_ p: UnsafePointer<CChar>?, _ name: String) throws -> String {
    String(cString: try arg(p, name))
}

/// A Swift object behind an opaque C handle, with a lock that serializes calls on it.
final class Handle<T>: @unchecked Sendable {
    let value: T
    let lock = NSLock()
    init(_ value: T) { self.value = value }

    static func retain(_ value: T) -> OpaquePointer { OpaquePointer(Unmanaged.passRetained(Handle(value)).toOpaque()) }

    static func borrow(_ p: OpaquePointer?, _ name: String = "handle") throws -> Handle<T> {
        Unmanaged<Handle<T>>.fromOpaque(UnsafeRawPointer(try arg(p, name))).takeUnretainedValue()
    }

    static func release(_ p: OpaquePointer?) {
        guard let p else { return }
        Unmanaged<Handle<T>>.fromOpaque(UnsafeRawPointer(p)).release()
    }

    func with<R>(_ body: (T) throws -> R) rethrows -> R {
        lock.lock(); defer { lock.unlock() }
        return try body(value)
    }
}
