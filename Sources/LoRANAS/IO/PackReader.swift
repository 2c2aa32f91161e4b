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
    private let base: UnsafeRawPointer
    private let size: Int
    private let isMapped: Bool
    private let indexOffset: Int

    /// Opens and checks the pack at `path`, which must be a regular file. A missing file is `.notFound`, other
    /// OS errors `.io`, corrupt content `.format`, a pack of a newer version `.unsupported`.
    public convenience init(path: String) throws {
        try Files.requireRegular(path)
        let fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC)
        guard fd >= 0 else {
            if errno == ENOENT { throw LoRANASError.notFound("no such file: \(path)") }
            throw LoRANASError.posix("cannot open \(path)")
        }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0 else { throw LoRANASError.posix("cannot stat \(path)") }
        // Checked again on the open descriptor: the path may have been replaced since the check above.
        guard (st.st_mode & S_IFMT) == S_IFREG else { throw LoRANASError.io("\(path) is not a regular file") }
        let size = Int(st.st_size)
        guard size >= PackFormat.headerPrefixSize + PackFormat.footerSize else {
            throw LoRANASError.format("\(path): a file of \(size) bytes is too short to be a pack (truncated?)")
        }
        guard let m = mmap(nil, size, PROT_READ, MAP_PRIVATE, fd, 0), m != MAP_FAILED else {
            throw LoRANASError.posix("cannot map \(path)")
        }
        try self.init(path: path, base: UnsafeRawPointer(m), size: size, isMapped: true)
    }

    /// Checks a pack held in memory (the bytes are copied); `name` stands in for the path in messages. The
    /// fuzz target and tests use it to skip the file system.
    convenience init(bytes: UnsafeRawBufferPointer, name: String) throws {
        guard bytes.count >= PackFormat.headerPrefixSize + PackFormat.footerSize, let src = bytes.baseAddress else {
            throw LoRANASError.format("\(name): \(bytes.count) bytes is too short to be a pack (truncated?)")
        }
        let copy = UnsafeMutableRawPointer.allocate(byteCount: bytes.count, alignment: 16)
        copy.copyMemory(from: src, byteCount: bytes.count)
        try self.init(path: name, base: UnsafeRawPointer(copy), size: bytes.count, isMapped: false)
    }

    /// Takes ownership of `base` (`size` ≥ 48 bytes): releases it if a check fails.
    private init(path: String, base: UnsafeRawPointer, size: Int, isMapped: Bool) throws {
        self.path = path
        self.base = base
        self.size = size
        self.isMapped = isMapped
        do {
            let layout = try PackLayout(base: base, size: size)
            metadata = layout.metadata
            count = layout.count
            indexOffset = layout.indexOffset
        } catch {
            Self.release(base, size: size, isMapped: isMapped)
            throw Self.named(error, path)
        }
    }

    deinit { Self.release(base, size: size, isMapped: isMapped) }

    private static func release(_ base: UnsafeRawPointer, size: Int, isMapped: Bool) {
        if isMapped {
            munmap(UnsafeMutableRawPointer(mutating: base), size)
        } else {
            UnsafeMutableRawPointer(mutating: base).deallocate()
        }
    }

    /// A `.format` or `.unsupported` error with the pack's name in front.
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
        defer { dropPages(record) }
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

    /// Hands the pages of `record` back to the kernel. The range is widened to whole pages; a neighbour's
    /// pages dropped with it are read again from the file when touched (the mapping is never written).
    private func dropPages(_ record: UnsafeRawBufferPointer) {
        guard isMapped, let start = record.baseAddress, record.count > 0 else { return }
        let page = Int(sysconf(Int32(_SC_PAGESIZE)))
        let from = (start - base) / page * page
        let to = min(start - base + record.count, size)
        madvise(UnsafeMutableRawPointer(mutating: base + from), to - from, MADV_DONTNEED)
    }
}
