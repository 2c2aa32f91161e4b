import Foundation

/// The structure of a pack in memory, checked: magic, version, footer, header/index CRC, every index entry,
/// the metadata. Every offset and length comes from the file, so each is bounded before it is used and all
/// arithmetic on them is overflow-checked; a failure is `.format` (a newer version `.unsupported`).
struct PackLayout {
    let metadata: PackMetadata
    let count: Int
    /// Where the index starts; the records fill `dataStart..<indexOffset`.
    let indexOffset: Int
    let dataStart: Int

    /// Checks the `size` bytes at `base` (at least 48).
    init(base: UnsafeRawPointer, size: Int) throws {
        try Self.checkMagic(base, size: size)
        let metadataLength = Int(base.loadLE(12) as UInt32)
        let footer = try Self.footer(base, size: size)
        guard metadataLength <= PackFormat.maxMetadataBytes,
              PackFormat.headerPrefixSize + metadataLength <= size - PackFormat.footerSize
        else { throw LoRANASError.format("metadata length \(metadataLength) runs past the file (truncated?)") }
        dataStart = PackFormat.headerPrefixSize + metadataLength
        (indexOffset, count) = try Self.indexBounds(footer, dataStart: dataStart, size: size)
        try Self.checkCRC(base, dataStart: dataStart, indexOffset: indexOffset, count: count, footer: footer)
        metadata = try Self.metadata(UnsafeRawBufferPointer(start: base + 16, count: metadataLength), count: count)
        try Self.checkEntries(base, indexOffset: indexOffset, count: count, dataStart: dataStart)
    }

    private static func checkMagic(_ base: UnsafeRawPointer, size: Int) throws {
        guard UnsafeRawBufferPointer(start: base, count: 8).elementsEqual(PackFormat.magic) else {
            throw LoRANASError.format("not a loranas pack (no LRNSPACK magic)")
        }
        let version = base.loadLE(8) as UInt32
        guard version <= PackFormat.version else {
            throw LoRANASError.unsupported("pack version \(version) was written by a newer loranas; this build "
                                               + "reads version \(PackFormat.version)")
        }
        guard version == PackFormat.version else { throw LoRANASError.format("pack version \(version) is invalid") }
    }

    private static func footer(_ base: UnsafeRawPointer, size: Int) throws -> PackFooter {
        let p = base + (size - PackFormat.footerSize)
        guard UnsafeRawBufferPointer(start: p + 24, count: 8).elementsEqual(PackFormat.magic) else {
            throw LoRANASError.format("no end marker: the pack is truncated or was never finished")
        }
        guard p.loadLE(20) as UInt32 == 0 else { throw LoRANASError.format("the footer's reserved word is not 0") }
        return PackFooter(indexOffset: p.loadLE(0), sampleCount: p.loadLE(8), crc: p.loadLE(16))
    }

    /// The index offset and sample count, checked against the file's size: the index is exactly the
    /// 32·N bytes before the footer.
    private static func indexBounds(_ f: PackFooter, dataStart: Int, size: Int) throws -> (Int, Int) {
        let room = UInt64(size - PackFormat.footerSize)
        guard f.sampleCount >= 1, f.sampleCount <= room / UInt64(PackFormat.entrySize) else {
            throw LoRANASError.format("sample count \(f.sampleCount) does not fit a file of \(size) bytes")
        }
        let indexBytes = f.sampleCount * UInt64(PackFormat.entrySize)
        guard f.indexOffset == room - indexBytes, f.indexOffset >= UInt64(dataStart) else {
            throw LoRANASError.format("index offset \(f.indexOffset) does not match the file's size \(size) "
                                          + "and \(f.sampleCount) samples (truncated?)")
        }
        return (Int(f.indexOffset), Int(f.sampleCount))
    }

    private static func checkCRC(_ base: UnsafeRawPointer, dataStart: Int, indexOffset: Int, count: Int,
                                 footer: PackFooter) throws
    {
        var crc = PackFormat.crc32(UnsafeRawBufferPointer(start: base, count: dataStart))
        let index = UnsafeRawBufferPointer(start: base + indexOffset, count: count * PackFormat.entrySize)
        crc = PackFormat.crc32(index, continuing: crc)
        crc = footer.countedBytes.withUnsafeBytes { PackFormat.crc32($0, continuing: crc) }
        guard crc == footer.crc else {
            throw LoRANASError.format("the header/index checksum does not match (CRC-32 0x\(String(crc, radix: 16)), "
                                          + "the footer says 0x\(String(footer.crc, radix: 16))): the pack is corrupt")
        }
    }

    private static func metadata(_ block: UnsafeRawBufferPointer, count: Int) throws -> PackMetadata {
        let m: PackMetadata
        do {
            m = try PackMetadata(json: JSON.parse(block))
        } catch let e as LoRANASError {
            throw LoRANASError.format("metadata: \(PackMetadata.message(e))")
        }
        if let p = m.problem() { throw LoRANASError.format("metadata: \(p)") }
        guard m.sampleCount == count else {
            throw LoRANASError.format("metadata: sample_count \(m.sampleCount), the index has \(count)")
        }
        return m
    }

    /// Every entry: records start where the previous ends (the first at `dataStart`), the last ends at the
    /// index, each is long enough for its counts, and the counts are in range.
    private static func checkEntries(_ base: UnsafeRawPointer, indexOffset: Int, count: Int, dataStart: Int) throws {
        var expected = UInt64(dataStart)
        for i in 0..<count {
            let (e, reserved) = PackIndexEntry.load(base + indexOffset + i * PackFormat.entrySize)
            guard e.offset == expected, e.length <= UInt64(indexOffset) - expected else {
                throw LoRANASError.format("index entry \(i): record at \(e.offset) of \(e.length) bytes is not "
                                              + "where the previous ends (\(expected)) or runs into the index")
            }
            guard reserved == 0, e.tokens >= 1, e.images <= UInt32(PackFormat.maxImages),
                  e.length >= e.minimumLength
            else {
                throw LoRANASError.format("index entry \(i): \(e.tokens) tokens and \(e.images) images do not fit "
                                              + "a record of \(e.length) bytes")
            }
            expected += e.length
        }
        guard expected == UInt64(indexOffset) else {
            throw LoRANASError.format("the records end at \(expected), not at the index (\(indexOffset))")
        }
    }
}

/// Decoding one sample record (the layout is in IO/PackFormat.swift).
enum PackRecord {
    /// The sample in `record`, which must hold exactly `tokens` ids and labels and `images` canvases; canvases
    /// are checked by ``MllamaCanvasImage``'s initializer against `maxTiles`.
    static func decode(_ record: UnsafeRawBufferPointer, tokens: Int, images: Int, maxTiles: Int) throws
        -> EncodedSample
    {
        guard let p = record.baseAddress else { throw LoRANASError.format("empty record") }
        // The index checks guarantee 8·tokens + 16·images ≤ record.count.
        let ids = (0..<tokens).map { p.loadLE(4 * $0) as Int32 }
        let labels = (0..<tokens).map { p.loadLE(4 * (tokens + $0)) as Int32 }
        var at = 8 * tokens
        var canvases: [MllamaCanvasImage] = []
        for j in 0..<images {
            guard record.count - at >= PackFormat.imageHeaderSize else {
                throw LoRANASError.format("image \(j)'s header runs past the record")
            }
            let head = (0..<4).map { Int(p.loadLE(at + 4 * $0) as UInt32) }
            at += PackFormat.imageHeaderSize
            let bytes = Size.product([head[0], head[2], head[1], head[2], 3]) ?? Int.max
            guard bytes <= record.count - at else {
                throw LoRANASError.format("image \(j) (\(head[0])×\(head[1]) tiles of \(head[2]) pixels) runs past "
                                              + "the record")
            }
            let pixels = Array(UnsafeRawBufferPointer(start: p + at, count: bytes))
            at += bytes
            canvases.append(try MllamaCanvasImage(rows: head[0], cols: head[1], tileSize: head[2],
                                                  aspectRatioId: head[3], maxTiles: maxTiles, pixels: pixels))
        }
        guard at == record.count else {
            throw LoRANASError.format("the record has \(record.count - at) bytes after its last image")
        }
        return EncodedSample(inputIds: ids, labels: labels, images: canvases)
    }
}
