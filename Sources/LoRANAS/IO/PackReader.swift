import Foundation
#if canImport(Glibc)
    import Glibc
#endif

/// Reads a pack (the layout is in IO/PackFormat.swift and docs/pack-format.md).
///
/// Opening checks the magic, the version, the footer, the CRC over header, index and footer, every index
/// entry (records contiguous, inside the data region, long enough for their token and image counts) and the
/// metadata; a hostile file is an error, never a trap or an out-of-bounds read. Each ``sample(_:)`` checks
/// its record's CRC and contents, so a stream detects a corrupt record without reading the whole file.
///
/// Memory: the file is mapped read-only and each record's pages are handed back to the kernel
/// (`madvise(MADV_DONTNEED)`) once the sample is copied out, so streaming a pack larger than memory keeps
/// the resident size flat (the index stays mapped: 32 bytes per sample). As with ``SafeTensorsFile``, a file
/// truncated by another process while mapped raises SIGBUS on access; the engine's writers never truncate in
/// place.
///
/// Thread-safe: after `init` nothing changes, so several threads may call ``sample(_:)`` at once.
public final class PackReader: @unchecked Sendable {
    /// The file's path (or the name given to the in-memory initializer).
    public let path: String
    /// The pack's metadata.
    public let metadata: PackMetadata
    /// The number of samples.
    public let count: Int
    private let bytes: MappedBytes
    private var base: UnsafeRawPointer { bytes.base }
    private let indexOffset: Int

    /// Opens and checks the pack at `path`, which must be a regular file. A missing file is `.notFound`, other
    /// OS errors `.io`, corrupt content `.format`, a pack of a newer version `.unsupported`.
    public convenience init(path: String) throws {
        try self.init(path: path, bytes: try MappedBytes(mapping: path))
    }

    /// Checks a pack held in memory (the bytes are copied); `name` stands in for the path in messages. The
    /// fuzz target and tests use it to skip the file system.
    convenience init(bytes: UnsafeRawBufferPointer, name: String) throws {
        try self.init(path: name, bytes: MappedBytes(copying: bytes))
    }

    private init(path: String, bytes: MappedBytes) throws {
        self.path = path
        self.bytes = bytes
        guard bytes.count >= PackFormat.headerPrefixSize + PackFormat.footerSize else {
            throw LoRANASError.format("\(path): a file of \(bytes.count) bytes is too short to be a pack (truncated?)")
        }
        do {
            let layout = try PackLayout(base: bytes.base, size: bytes.count)
            metadata = layout.metadata
            count = layout.count
            indexOffset = layout.indexOffset
        } catch {
            throw Self.named(error, path)
        }
    }

    private static func named(_ error: Error, _ path: String) -> Error {
        switch error as? LoRANASError {
        case .format(let m)?: return LoRANASError.format("\(path): \(m)")
        case .unsupported(let m)?: return LoRANASError.unsupported("\(path): \(m)")
        default: return error
        }
    }

    // MARK: - Samples

    /// Sample `i`'s token count, from the index (no record is touched). `i` must be in 0..<count.
    public func length(_ i: Int) -> Int { Int(entry(i).tokens) }

    /// Sample `i`'s image count, from the index (no record is touched). `i` must be in 0..<count.
    public func imageCount(_ i: Int) -> Int { Int(entry(i).images) }

    /// Sample `i`, with its record's CRC and contents checked (a corrupt record is `.format`, naming the sample);
    /// an index outside 0..<count is `.invalidArgument`.
    public func sample(_ i: Int) throws -> EncodedSample {
        guard i >= 0 && i < count else {
            throw LoRANASError.invalidArgument("sample \(i) is outside 0..<\(count) of \(path)")
        }
        let e = entry(i)
        // The index checks at open put the record inside the file.
        let record = UnsafeRawBufferPointer(start: base + Int(e.offset), count: Int(e.length))
        defer { bytes.dropPages(Int(e.offset)..<(Int(e.offset) + Int(e.length))) }
        let crc = PackFormat.crc32(record)
        guard crc == e.crc else {
            throw LoRANASError.format("\(path): sample \(i) is corrupt (CRC-32 \(hex(crc)), the index says "
                                          + "\(hex(e.crc)))")
        }
        do {
            let sample = try PackRecord.decode(record, tokens: Int(e.tokens), images: Int(e.images),
                                               maxTiles: metadata.imageSettings.maxImageTiles)
            if let p = metadata.problem(with: sample) { throw LoRANASError.format(p) }
            return sample
        } catch let error as LoRANASError {
            throw LoRANASError.format("\(path): sample \(i): \(PackMetadata.message(error))")
        }
    }

    private func entry(_ i: Int) -> PackIndexEntry {
        precondition(i >= 0 && i < count, "sample \(i) is outside 0..<\(count)")
        return PackIndexEntry.load(base + indexOffset + i * PackFormat.entrySize).entry
    }

    private func hex(_ v: UInt32) -> String { "0x" + String(v, radix: 16) }
}
