// The pack format: an on-disk dataset of `EncodedSample`s (token ids, labels, uint8 image canvases).
// docs/pack-format.md repeats this description for readers who do not read Swift.
//
// Every integer is little-endian. A pack of N samples, F bytes long:
//
//   offset        size   field
//   0             8      magic "LRNSPACK"
//   8             4      u32 version (1)
//   12            4      u32 M, the metadata block's length (at most 1 MiB)
//   16            M      metadata: UTF-8 JSON (keys sorted, see PackMetadata) followed by ASCII spaces
//   16+M          ...    the sample records, one after another, in index order, no gaps
//   F-32-32N      32·N   the index: one entry per sample
//   F-32          32     the footer
//
// A sample record of S tokens and I images:
//   4·S  i32 input ids
//   4·S  i32 labels (−100, or the input id at the same position)
//   then for each image: u32 rows, u32 cols, u32 tile size t, u32 aspect ratio id (16 bytes),
//        followed by rows·t · cols·t · 3 uint8 canvas samples (row-major (rows·t, cols·t, 3))
//
// An index entry (32 bytes):
//   u64 record offset (from the start of the file), u64 record length,
//   u32 token count S, u32 image count I, u32 CRC-32 of the record's bytes, u32 reserved (0)
//
// The footer (32 bytes):
//   u64 index offset, u64 sample count N,
//   u32 CRC-32 of header (bytes 0..<16+M) ‖ index ‖ the footer's first 16 bytes,
//   u32 reserved (0), magic "LRNSPACK" again (a truncated file has no end marker)
//
// Checks: the header/index CRC at open, with every index entry (records contiguous from 16+M to the index,
// lengths at least 8·S + 16·I); a record's CRC when that sample is read, so a stream of samples detects a
// corrupt record without reading the whole file. CRC-32 is zlib's (the polynomial of gzip and PNG).
// The metadata's sample count and skipped count are written last: the writer reserves room for them
// (the JSON is padded with spaces) and rewrites the block before the index, so a pack is byte-identical
// for identical inputs.
import CZlib
import Foundation

/// Layout constants and the small fixed-size structures of the pack format (see the comment above).
enum PackFormat {
    /// "LRNSPACK", at the start and at the end of a pack.
    static let magic: [UInt8] = Array("LRNSPACK".utf8)
    /// The version this build writes and reads.
    static let version: UInt32 = 1
    /// Magic, version and metadata length.
    static let headerPrefixSize = 16
    static let entrySize = 32
    static let footerSize = 32
    /// rows, cols, tile size, aspect ratio id.
    static let imageHeaderSize = 16
    static let maxMetadataBytes = 1 << 20
    /// Spaces reserved after the metadata JSON for the final sample and skipped counts (two Ints of up to 20
    /// characters each replace two zeros).
    static let metadataSlack = 40
    /// The most images one sample may hold.
    static let maxImages = 1 << 16
    /// The most tokens one sample may hold (the index stores a u32).
    static let maxTokens = Int(UInt32.max)

    /// zlib's CRC-32 of `bytes`, continuing from `crc` (0 to start).
    static func crc32(_ bytes: UnsafeRawBufferPointer, continuing crc: UInt32 = 0) -> UInt32 {
        var c = uLong(crc)
        guard var p = bytes.baseAddress?.assumingMemoryBound(to: Bytef.self) else { return crc }
        var left = bytes.count
        while left > 0 {
            let n = min(left, 1 << 30)
            c = CZlib.crc32(c, p, uInt(n))
            p += n
            left -= n
        }
        return UInt32(truncatingIfNeeded: c)
    }

    /// The 16 bytes before the metadata block.
    static func headerPrefix(metadataLength: Int) -> [UInt8] {
        var out = magic
        out.appendLE(version)
        out.appendLE(UInt32(metadataLength))
        return out
    }
}

/// One index entry: where a sample's record is, what it holds, and its CRC.
struct PackIndexEntry: Equatable {
    var offset: UInt64
    var length: UInt64
    var tokens: UInt32
    var images: UInt32
    var crc: UInt32

    /// The entry's 32 bytes, appended to `out`.
    func append(to out: inout [UInt8]) {
        out.appendLE(offset)
        out.appendLE(length)
        out.appendLE(tokens)
        out.appendLE(images)
        out.appendLE(crc)
        out.appendLE(UInt32(0))
    }

    /// The entry at `p` (32 readable bytes) and its reserved word.
    static func load(_ p: UnsafeRawPointer) -> (entry: PackIndexEntry, reserved: UInt32) {
        (PackIndexEntry(offset: p.loadLE(0), length: p.loadLE(8), tokens: p.loadLE(16), images: p.loadLE(20),
                        crc: p.loadLE(24)), p.loadLE(28))
    }

    /// The fewest bytes a record of this many tokens and images can have (the canvases may be 0 bytes only in
    /// a corrupt file, which the record's own checks refuse).
    var minimumLength: UInt64 {
        8 * UInt64(tokens) + UInt64(PackFormat.imageHeaderSize) * UInt64(images)
    }
}

/// The footer: index offset, sample count, header/index CRC, end marker.
struct PackFooter: Equatable {
    var indexOffset: UInt64
    var sampleCount: UInt64
    var crc: UInt32

    /// The first 16 bytes (covered by the CRC).
    var countedBytes: [UInt8] {
        var out: [UInt8] = []
        out.appendLE(indexOffset)
        out.appendLE(sampleCount)
        return out
    }

    /// All 32 bytes.
    var bytes: [UInt8] {
        var out = countedBytes
        out.appendLE(crc)
        out.appendLE(UInt32(0))
        return out + PackFormat.magic
    }
}

extension [UInt8] {
    mutating func appendLE(_ v: UInt32) { Swift.withUnsafeBytes(of: v.littleEndian) { append(contentsOf: $0) } }
    mutating func appendLE(_ v: UInt64) { Swift.withUnsafeBytes(of: v.littleEndian) { append(contentsOf: $0) } }
    mutating func appendLE(_ v: Int32) { Swift.withUnsafeBytes(of: v.littleEndian) { append(contentsOf: $0) } }
}

extension UnsafeRawPointer {
    /// The little-endian integer at byte `offset` (any alignment).
    func loadLE<T: FixedWidthInteger>(_ offset: Int) -> T {
        T(littleEndian: loadUnaligned(fromByteOffset: offset, as: T.self))
    }
}

/// Recomputing a pack's checksums in place: for tests and the fuzz target, so that bytes changed on purpose
/// reach the structural checks that the CRCs guard. Works on any bytes (out-of-range offsets are skipped).
enum PackSeal {
    /// Rewrites each index entry's record CRC (for records inside the buffer) and the footer's CRC, when the
    /// footer's index offset and count describe an index inside the buffer.
    static func reseal(_ bytes: inout [UInt8]) {
        let size = bytes.count
        let fixed = PackFormat.headerPrefixSize + PackFormat.footerSize
        bytes.withUnsafeMutableBytes { raw in
            guard size >= fixed, let base = raw.baseAddress else { return }
            let p = UnsafeRawPointer(base)
            let dataStart = PackFormat.headerPrefixSize + Int(p.loadLE(12) as UInt32)
            let f = size - PackFormat.footerSize
            let (io, n) = (p.loadLE(f) as UInt64, p.loadLE(f + 8) as UInt64)
            guard dataStart <= f, n <= UInt64(f / PackFormat.entrySize), io == UInt64(f) - n * 32,
                  io >= UInt64(dataStart)
            else { return }
            for i in 0..<Int(n) {
                let e = PackIndexEntry.load(p + Int(io) + 32 * i).entry
                guard e.offset <= UInt64(size), e.length <= UInt64(size) - e.offset else { continue }
                let crc = PackFormat.crc32(UnsafeRawBufferPointer(start: p + Int(e.offset), count: Int(e.length)))
                raw.storeBytes(of: crc.littleEndian, toByteOffset: Int(io) + 32 * i + 24, as: UInt32.self)
            }
            var crc = PackFormat.crc32(UnsafeRawBufferPointer(start: p, count: dataStart))
            crc = PackFormat.crc32(UnsafeRawBufferPointer(start: p + Int(io), count: Int(n) * 32), continuing: crc)
            crc = PackFormat.crc32(UnsafeRawBufferPointer(start: p + f, count: 16), continuing: crc)
            raw.storeBytes(of: crc.littleEndian, toByteOffset: f + 16, as: UInt32.self)
        }
    }
}
