import Foundation

/// Reading small files that users name (configs, tokenizers, templates, images): only regular files
/// are opened, since opening a FIFO for reading blocks until a writer appears, and their size is bounded.
public enum Files {
    /// The largest file `read` accepts (1 GiB): a tokenizer.json is tens of MB, a config a few KB.
    public static let maxBytes = 1 << 30

    /// Throws unless `path` names a regular file (following symlinks).
    public static func requireRegular(_ path: String) throws {
        var st = stat()
        guard stat(path, &st) == 0 else {
            if errno == ENOENT { throw LoRANASError.notFound("no such file: \(path)") }
            throw LoRANASError.io("cannot stat \(path): \(String(cString: strerror(errno)))")
        }
        let kind: String
        switch st.st_mode & S_IFMT {
        case S_IFREG: return
        case S_IFDIR: kind = "a directory"
        case S_IFIFO: kind = "a FIFO"
        case S_IFCHR, S_IFBLK: kind = "a device"
        case S_IFSOCK: kind = "a socket"
        default: kind = "of another kind"
        }
        throw LoRANASError.io("\(path) is \(kind), not a regular file")
    }

    /// The contents of the regular file at `path`, at most `limit` bytes.
    public static func read(_ path: String, limit: Int = maxBytes) throws -> Data {
        try requireRegular(path)
        let data: Data
        do {
            data = try Data(contentsOf: URL(fileURLWithPath: path), options: .mappedIfSafe)
        } catch {
            throw LoRANASError.fileSystem(path, error)
        }
        guard data.count <= limit else {
            throw LoRANASError.invalidArgument("\(path) has \(data.count) bytes, over the limit of \(limit)")
        }
        return data
    }

    /// A JSON file, parsed; errors name the file.
    public static func readJSON(_ path: String) throws -> JSON {
        let data = try read(path)
        do {
            return try JSON.parse(data)
        } catch let e as LoRANASError {
            throw LoRANASError.format("\((path as NSString).lastPathComponent): \(e.description)")
        }
    }
}
