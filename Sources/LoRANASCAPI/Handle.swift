import Foundation
import LoRANAS

/// A Swift object behind an opaque C handle, with a lock that serializes calls on it.
///
/// Every live handle is in a registry with its type, so a handle of the wrong kind (a model
/// passed as a dataset), a freed one or a pointer that was never a handle is refused with an
/// error instead of being dereferenced.
final class Handle<T>: @unchecked Sendable {
    let value: T
    let lock = NSLock()
    init(_ value: T) { self.value = value }

    static var kind: String { String(describing: T.self) }

    static func retain(_ value: T) -> OpaquePointer {
        let p = Unmanaged.passRetained(Handle(value)).toOpaque()
        HandleRegistry.insert(p, type: ObjectIdentifier(Handle<T>.self), kind: kind)
        return OpaquePointer(p)
    }

    static func borrow(_ p: OpaquePointer?, _ name: String = "handle") throws -> Handle<T> {
        let raw = UnsafeRawPointer(try arg(p, name))
        try HandleRegistry.check(raw, type: ObjectIdentifier(Handle<T>.self), kind: kind, name: name)
        return Unmanaged<Handle<T>>.fromOpaque(raw).takeUnretainedValue()
    }

    /// Frees a handle; NULL, and a pointer that is not a live handle of this kind, are ignored
    /// (a free has no status to report a mistake with).
    static func release(_ p: OpaquePointer?) {
        guard let p else { return }
        let raw = UnsafeRawPointer(p)
        guard HandleRegistry.remove(raw, type: ObjectIdentifier(Handle<T>.self)) else { return }
        Unmanaged<Handle<T>>.fromOpaque(raw).release()
    }

    func with<R>(_ body: (T) throws -> R) rethrows -> R {
        lock.lock()
        defer { lock.unlock() }
        return try body(value)
    }
}

/// The live handles and their types.
enum HandleRegistry {
    nonisolated(unsafe) private static var live: [UnsafeRawPointer: (type: ObjectIdentifier, kind: String)] = [:]
    private static let lock = NSLock()

    static func insert(_ p: UnsafeRawPointer, type: ObjectIdentifier, kind: String) {
        lock.lock()
        live[p] = (type, kind)
        lock.unlock()
    }

    static func check(_ p: UnsafeRawPointer, type: ObjectIdentifier, kind: String, name: String) throws {
        lock.lock()
        let entry = live[p]
        lock.unlock()
        guard let entry else {
            throw LoRANASError.invalidArgument("\(name) is not a live handle (freed, or never created)")
        }
        guard entry.type == type else {
            throw LoRANASError.invalidArgument("\(name) is a \(entry.kind) handle, where a \(kind) handle is expected")
        }
    }

    /// Removes a live handle of `type`; false when `p` is not one.
    static func remove(_ p: UnsafeRawPointer, type: ObjectIdentifier) -> Bool {
        lock.lock()
        defer { lock.unlock() }
        guard live[p]?.type == type else { return false }
        live[p] = nil
        return true
    }
}
