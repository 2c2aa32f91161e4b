import Foundation
#if canImport(Glibc)
    import Glibc
#endif

/// Writes a pack (the layout is in IO/PackFormat.swift and docs/pack-format.md) one sample at a time.
///
/// Samples stream to a temporary file beside the target, named `.<name>.tmp-<pid>-<random>` as
/// ``AtomicFile`` names them; only the index (32 bytes per sample) stays in memory. ``finish(skipped:)`` writes
/// the index and footer, syncs the file and renames it onto the target. A writer that is never finished (an
/// error, or the last reference dropped) removes its temporary file and leaves the target untouched.
///
/// Identical metadata and samples give byte-identical packs. Not thread-safe: one writer, one thread.
public final class PackWriter {
    /// The target path.
    public let path: String
    /// The metadata the pack is written with (the counts are final after ``finish(skipped:)``).
    public private(set) var metadata: PackMetadata
    private let tmpPath: String
    private var fd: Int32
    private var offset: UInt64
    /// Room for the metadata block, fixed at creation: the final counts must fit in it.
    private let metadataLength: Int
    private var entries: [PackIndexEntry] = []
    private var isOpen = true

    /// Starts a pack at `path`: creates its temporary file and writes the header (with zero counts, rewritten
    /// by ``finish(skipped:)``). Invalid metadata is `.invalidArgument`; a failed create or write `.io`.
    public init(path: String, metadata: PackMetadata) throws {
        if let p = metadata.problem() { throw LoRANASError.invalidArgument("pack metadata: \(p)") }
        var initial = metadata
        (initial.sampleCount, initial.skippedCount) = (0, 0)
        let json = Array(initial.json.serialized.utf8)
        let length = json.count + PackFormat.metadataSlack
        guard length <= PackFormat.maxMetadataBytes else {
            throw LoRANASError.invalidArgument("pack metadata of \(json.count) bytes is too long")
        }
        let url = URL(fileURLWithPath: path)
        let prefix = AtomicFile.tempPrefix(url.lastPathComponent)
        AtomicFile.removeStaleTemporaries(in: url.deletingLastPathComponent().path, prefix: prefix)
        let random = UInt32.random(in: 0...UInt32.max)
        let tmp = url.deletingLastPathComponent().appendingPathComponent("\(prefix)\(getpid())-\(random)").path
        let fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw LoRANASError.posix("cannot create \(tmp)") }
        self.path = path
        self.metadata = initial
        self.tmpPath = tmp
        self.fd = fd
        self.metadataLength = length
        self.offset = 0
        try guarded { try writeAll(Self.header(json, length: length)) }
    }

    deinit { if isOpen { abort() } }

    /// Appends one sample (validated against the metadata: see ``PackMetadata``). An invalid sample is
    /// `.invalidArgument` and is not written; the writer stays usable. A failed write is `.io` and abandons
    /// the pack (its temporary file is removed).
    public func append(_ sample: EncodedSample) throws {
        try requireOpen()
        if let p = metadata.problem(with: sample) {
            throw LoRANASError.invalidArgument("sample \(entries.count) \(p)")
        }
        try guarded {
            var entry = PackIndexEntry(offset: offset, length: 0, tokens: UInt32(sample.length),
                                       images: UInt32(sample.images.count), crc: 0)
            let start = offset
            entry.crc = try writeRecord(sample)
            entry.length = offset - start
            entries.append(entry)
        }
    }

    /// Writes the final counts, the index and the footer, syncs the file and renames it onto ``path``.
    /// An empty pack is refused (`.invalidArgument`, "empty dataset"), as is a negative `skipped`; after any
    /// error the temporary file is gone and the target untouched.
    public func finish(skipped: Int) throws {
        try requireOpen()
        guard !entries.isEmpty else {
            abort()
            throw LoRANASError.invalidArgument("empty dataset: no sample was written to \(path)")
        }
        guard skipped >= 0 else {
            abort()
            throw LoRANASError.invalidArgument("the skipped count \(skipped) is negative")
        }
        metadata.sampleCount = entries.count
        metadata.skippedCount = skipped
        try guarded {
            var crc = try rewriteHeader()
            let indexOffset = offset
            crc = try writeIndex(crc: crc)
            var footer = PackFooter(indexOffset: indexOffset, sampleCount: UInt64(entries.count), crc: 0)
            footer.crc = footer.countedBytes.withUnsafeBytes { PackFormat.crc32($0, continuing: crc) }
            try writeAll(footer.bytes)
            guard fsync(fd) == 0 else { throw LoRANASError.posix("cannot sync \(tmpPath)") }
            close(fd)
            fd = -1
            guard rename(tmpPath, path) == 0 else { throw LoRANASError.posix("cannot rename onto \(path)") }
            isOpen = false
        }
    }

    // MARK: - Records

    /// Writes `sample`'s record; returns its CRC.
    private func writeRecord(_ sample: EncodedSample) throws -> UInt32 {
        var head: [UInt8] = []
        head.reserveCapacity(8 * sample.length)
        for id in sample.inputIds { head.appendLE(id) }
        for label in sample.labels { head.appendLE(label) }
        var crc = try writeCounted(head, crc: 0)
        for canvas in sample.images {
            var imageHead: [UInt8] = []
            for v in [canvas.rows, canvas.cols, canvas.tileSize, canvas.aspectRatioId] { imageHead.appendLE(UInt32(v)) }
            crc = try writeCounted(imageHead, crc: crc)
            crc = try writeCounted(canvas.pixels, crc: crc)
        }
        return crc
    }

    private func writeCounted(_ bytes: [UInt8], crc: UInt32) throws -> UInt32 {
        try writeAll(bytes)
        return bytes.withUnsafeBytes { PackFormat.crc32($0, continuing: crc) }
    }

    // MARK: - Header, index

    private static func header(_ json: [UInt8], length: Int) -> [UInt8] {
        PackFormat.headerPrefix(metadataLength: length) + json
            + [UInt8](repeating: 0x20, count: length - json.count)
    }

    /// Rewrites the header with the final counts at offset 0; returns the header's CRC.
    private func rewriteHeader() throws -> UInt32 {
        let json = Array(metadata.json.serialized.utf8)
        guard json.count <= metadataLength else {
            throw LoRANASError.invalidArgument("the final pack metadata does not fit its reserved block")
        }
        let bytes = Self.header(json, length: metadataLength)
        try pwriteAll(bytes, at: 0)
        return bytes.withUnsafeBytes { PackFormat.crc32($0) }
    }

    /// Writes the index in chunks (no second copy of it); returns the CRC continued over it.
    private func writeIndex(crc start: UInt32) throws -> UInt32 {
        var crc = start
        var chunk: [UInt8] = []
        for (i, e) in entries.enumerated() {
            e.append(to: &chunk)
            if chunk.count >= 1 << 16 || i == entries.count - 1 {
                crc = try writeCounted(chunk, crc: crc)
                chunk.removeAll(keepingCapacity: true)
            }
        }
        return crc
    }

    // MARK: - File

    private func writeAll(_ bytes: [UInt8]) throws {
        try pwriteAll(bytes, at: offset)
        offset += UInt64(bytes.count)
    }

    private func pwriteAll(_ bytes: [UInt8], at position: UInt64) throws {
        try bytes.withUnsafeBytes { raw in
            guard let base = raw.baseAddress else { return }
            var done = 0
            while done < raw.count {
                let n = pwrite(fd, base + done, raw.count - done, off_t(position) + off_t(done))
                if n < 0 && errno == EINTR { continue }
                guard n > 0 else { throw LoRANASError.posix("cannot write \(tmpPath)") }
                done += n
            }
        }
    }

    private func requireOpen() throws {
        guard isOpen else { throw LoRANASError.invalidArgument("the pack writer for \(path) is finished or failed") }
    }

    /// Runs `body`; on an error abandons the pack before rethrowing.
    private func guarded(_ body: () throws -> Void) throws {
        do {
            try body()
        } catch {
            abort()
            throw error
        }
    }

    /// Closes and removes the temporary file; the writer refuses every later call.
    private func abort() {
        if fd >= 0 { close(fd) }
        fd = -1
        unlink(tmpPath)
        isOpen = false
    }
}
