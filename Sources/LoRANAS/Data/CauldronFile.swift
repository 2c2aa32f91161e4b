import Foundation

/// A Cauldron JSONL file: one record a line, `{"images": [...], "texts": [{"user": ..., "assistant": ...}]}`,
/// other keys ignored, blank lines skipped. An image is
/// - a string, read as transformers' `load_image` reads one: a path (relative to the file's directory, or
///   absolute), or base64 bytes (optionally as a `data:image/...;base64,` URL); decoded on the path route
///   (EXIF transpose, alpha dropped);
/// - an object `{"bytes": base64}` or `{"path": ...}` (how HF datasets export an Image column), decoded as the
///   PIL image HF datasets would hand to the processor (no transpose, alpha composited onto white).
///
/// URLs are refused (loranas never downloads). Errors name the file and line.
public struct CauldronFile: Sendable {
    /// The file's path.
    public let path: String
    /// The pixel limit of each image.
    public var maxPixels = ImageDecodeOptions.pillowMaxPixels

    /// The longest line read (1 GiB); a longer one is an error, not an unbounded allocation.
    public static let maxLineBytes = 1 << 30

    /// A reader of the JSONL file at `path`; it must be a regular file.
    public init(path: String) throws {
        try Files.requireRegular(path)
        self.path = path
    }

    /// One record of the file, with its images decoded.
    public struct Entry: Sendable {
        /// The 1-based line number.
        public var line: Int
        /// The record.
        public var record: CauldronRecord
        /// Its images, decoded to RGB, in order.
        public var images: [RGBImage]
    }

    /// Calls `body` with every record in file order. An error in a line, or thrown by `body`, is rethrown with
    /// `file:line: ` before its message.
    public func forEach(_ body: (Entry) throws -> Void) throws {
        try forEachLine { number, bytes in
            guard let entry = try self.entry(bytes, line: number) else { return }
            try located(line: number) { try body(entry) }
        }
    }

    /// Calls `body` with every line's number and bytes (without the newline), in file order.
    public func forEachLine(_ body: (Int, ArraySlice<UInt8>) throws -> Void) throws {
        let reader = try LineReader(path: path, maxLineBytes: Self.maxLineBytes)
        while let (number, bytes) = try reader.next() { try body(number, bytes) }
    }

    /// The record of one line and its decoded images; nil for a blank line. Errors name the file and line.
    public func entry(_ bytes: ArraySlice<UInt8>, line: Int) throws -> Entry? {
        if bytes.allSatisfy({ $0 == 0x20 || $0 == 0x09 || $0 == 0x0D }) { return nil }
        return try located(line: line) {
            let json = try JSON.parse(Data(bytes))
            let record = try CauldronRecord(json: json)
            let directory = URL(fileURLWithPath: path).deletingLastPathComponent()
            let images = try (json["images"]?.array ?? []).enumerated().map { j, image in
                try decode(image, index: j, directory: directory)
            }
            return Entry(line: line, record: record, images: images)
        }
    }

    /// `body`'s result; its LoRANASError gets `file:line: ` before the message.
    public func located<T>(line: Int, _ body: () throws -> T) throws -> T {
        do {
            return try body()
        } catch let e as LoRANASError {
            throw e.prefixed("\((path as NSString).lastPathComponent):\(line): ")
        }
    }

    private func decode(_ image: JSON, index j: Int, directory: URL) throws -> RGBImage {
        var options = ImageDecodeOptions.path
        options.maxPixels = maxPixels
        let bytes: Data
        if let s = image.string {
            bytes = try Self.load(s, directory: directory, what: "images[\(j)]")
        } else if let b64 = image["bytes"]?.string {
            bytes = try Self.base64(b64, what: "images[\(j)].bytes")
            options = ImageDecodeOptions(maxPixels: maxPixels)
        } else if let p = image["path"]?.string {
            bytes = try Files.read(Self.resolve(p, directory: directory))
            options = ImageDecodeOptions(maxPixels: maxPixels)
        } else {
            throw LoRANASError.format("images[\(j)] must be a path, base64 bytes or {\"bytes\"|\"path\": ...}")
        }
        do {
            return try bytes.withUnsafeBytes { try ImageDecoder.decode($0, options: options) }
        } catch let e as LoRANASError {
            throw e.prefixed("images[\(j)]: ")
        }
    }

    /// transformers' `load_image` for a string: a file if one exists there, else base64.
    static func load(_ s: String, directory: URL, what: String) throws -> Data {
        if s.hasPrefix("http://") || s.hasPrefix("https://") {
            throw LoRANASError.unsupported("\(what) is a URL; loranas does not download, save the image first")
        }
        let path = resolve(s, directory: directory)
        if FileManager.default.fileExists(atPath: path) { return try Files.read(path) }
        var payload = Substring(s)
        if s.hasPrefix("data:image/"), let comma = s.firstIndex(of: ",") { payload = s[s.index(after: comma)...] }
        guard payload.count >= 8, let data = Data(base64Encoded: String(payload), options: .ignoreUnknownCharacters)
        else {
            throw LoRANASError.notFound("\(what): no file \(path), and the string is not base64 image bytes")
        }
        return data
    }

    static func base64(_ s: String, what: String) throws -> Data {
        guard let data = Data(base64Encoded: s, options: .ignoreUnknownCharacters) else {
            throw LoRANASError.format("\(what) is not base64")
        }
        return data
    }

    static func resolve(_ path: String, directory: URL) -> String {
        path.hasPrefix("/") ? path : directory.appendingPathComponent(path).path
    }
}

/// Reads a file line by line in 1 MiB chunks, so a large JSONL file is never held whole.
final class LineReader {
    private let handle: FileHandle
    private let maxLineBytes: Int
    private var buffer: [UInt8] = []
    private var start = 0
    /// Where the search for the next newline resumes (the bytes before it have none).
    private var scanned = 0
    private var atEnd = false
    private var number = 0

    init(path: String, maxLineBytes: Int) throws {
        do {
            handle = try FileHandle(forReadingFrom: URL(fileURLWithPath: path))
        } catch {
            throw LoRANASError.fileSystem(path, error)
        }
        self.maxLineBytes = maxLineBytes
    }

    deinit { try? handle.close() }

    /// The next line (1-based number, bytes without the newline), or nil at the end of the file.
    func next() throws -> (Int, ArraySlice<UInt8>)? {
        while true {
            if let nl = buffer[max(start, scanned)...].firstIndex(of: 0x0A) {
                defer {
                    start = nl + 1
                    scanned = start
                }
                number += 1
                return (number, buffer[start..<nl])
            }
            guard buffer.count - start <= maxLineBytes else {
                throw LoRANASError.invalidArgument("line \(number + 1) is longer than \(maxLineBytes) bytes")
            }
            if atEnd {
                guard start < buffer.count else { return nil }
                defer { start = buffer.count }
                number += 1
                return (number, buffer[start...])
            }
            buffer.removeSubrange(0..<start)
            start = 0
            scanned = buffer.count
            let chunk = try handle.read(upToCount: 1 << 20) ?? Data()
            if chunk.isEmpty { atEnd = true }
            buffer += chunk
        }
    }
}
