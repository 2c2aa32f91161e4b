import CRuntime
import Foundation
#if canImport(Glibc)
    import Glibc
#endif

/// Writes a set of files that belong together (an adapter's config and weights, a merged
/// model's config and weights) as a unit: they are written into a fresh sibling directory,
/// which then takes the target's place in one atomic exchange. A crash at any point leaves the
/// target holding either all the old files or all the new ones, never a mix.
///
/// Files in an existing target that the write does not produce (a README, say) are moved into
/// the new directory after the exchange; a crash in that short window leaves them in the hidden
/// sibling `.<name>.old-<pid>-<n>`, not lost.
public enum AtomicDirectory {
    /// Creates a temporary sibling of `dir`, lets `body` fill it, then publishes it as `dir`.
    public static func write(_ dir: String, _ body: (String) throws -> Void) throws {
        let target = URL(fileURLWithPath: dir).standardizedFileURL
        let parent = target.deletingLastPathComponent().path
        let name = target.lastPathComponent
        try createParent(parent)
        let tag = "\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        let staging = parent + "/.\(name).tmp-\(tag)"
        guard mkdir(staging, 0o755) == 0 else { throw LoRANASError.posix("cannot create \(staging)") }
        do {
            try body(staging)
            try publish(staging, as: target.path, old: parent + "/.\(name).old-\(tag)")
        } catch {
            try? FileManager.default.removeItem(atPath: staging)
            throw error
        }
    }

    private static func createParent(_ parent: String) throws {
        var isDir: ObjCBool = false
        if FileManager.default.fileExists(atPath: parent, isDirectory: &isDir), !isDir.boolValue {
            throw LoRANASError.posix("cannot create a directory in \(parent)", errno: ENOTDIR)
        }
        do {
            try FileManager.default.createDirectory(atPath: parent, withIntermediateDirectories: true)
        } catch {
            throw LoRANASError.fileSystem("cannot create \(parent)", error)
        }
    }

    private static func publish(_ staging: String, as target: String, old: String) throws {
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: target, isDirectory: &isDir) else {
            guard rename(staging, target) == 0 else { throw LoRANASError.posix("cannot create \(target)") }
            return
        }
        guard isDir.boolValue else { throw LoRANASError.io("\(target) exists and is not a directory") }
        if lr_rename_exchange(staging, target) == 0 {
            // `staging` now holds the old contents.
            try adoptForeignFiles(from: staging, into: target)
            try? FileManager.default.removeItem(atPath: staging)
            return
        }
        guard errno == EINVAL || errno == ENOSYS else { throw LoRANASError.posix("cannot replace \(target)") }
        // No atomic exchange on this filesystem: two renames (a crash between them leaves the
        // old directory at `old` and the new one complete at `staging`).
        guard rename(target, old) == 0 else { throw LoRANASError.posix("cannot replace \(target)") }
        guard rename(staging, target) == 0 else {
            let e = LoRANASError.posix("cannot replace \(target)")
            _ = rename(old, target)
            throw e
        }
        try adoptForeignFiles(from: old, into: target)
        try? FileManager.default.removeItem(atPath: old)
    }

    /// Moves the entries of the replaced directory that the new one does not have.
    private static func adoptForeignFiles(from old: String, into target: String) throws {
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: old)) ?? []
        for e in entries where !FileManager.default.fileExists(atPath: target + "/" + e) {
            guard rename(old + "/" + e, target + "/" + e) == 0 else {
                throw LoRANASError.posix("cannot keep \(old)/\(e)")
            }
        }
    }
}
