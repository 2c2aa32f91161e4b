import CImageIO

/// Calls one of the C decoders (which catch libpng's and libjpeg's longjmp errors) and turns its
/// status into a Swift error; the raw image is copied out and its C buffers freed.
struct RawImage {
    var samples: [UInt8]
    let width: Int
    let height: Int
    let channels: Int
    let depth: Int
    let pngColorType: Int
    let pngBitDepth: Int
    let hasTRNS: Bool
    /// The grey ([0]) or RGB tRNS colour as stored.
    let trns: [Int]
    let exif: [UInt8]

    typealias Decoder = (UnsafePointer<UInt8>?, Int, Int64, UnsafeMutablePointer<lr_raw_image>?,
                         UnsafeMutablePointer<CChar>?, Int) -> Int32

    static func decode(_ bytes: UnsafeRawBufferPointer, maxPixels: Int, format: String, with decoder: Decoder)
        throws -> RawImage
    {
        var raw = lr_raw_image()
        var message = [CChar](repeating: 0, count: 512)
        let base = bytes.baseAddress?.assumingMemoryBound(to: UInt8.self)
        let status = message.withUnsafeMutableBufferPointer { m in
            decoder(base, bytes.count, Int64(maxPixels), &raw, m.baseAddress, m.count)
        }
        defer { lr_raw_image_free(&raw) }
        let text = String(decoding: message.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        switch Int(status) {
        case Int(LR_IMAGE_OK):
            break
        case Int(LR_IMAGE_TOO_LARGE):
            throw LoRANASError.invalidArgument(
                "image too large: \(text) (a decompression-bomb guard, as Pillow's MAX_IMAGE_PIXELS × 2)")
        case Int(LR_IMAGE_NO_MEMORY):
            throw LoRANASError.invalidArgument("cannot decode the \(format) image: \(text)")
        default:
            throw LoRANASError.format("corrupt or unsupported \(format) image: \(text)")
        }
        let count = Int(raw.width) * Int(raw.height) * Int(raw.channels) * Int(raw.depth) / 8
        let samples = [UInt8](UnsafeBufferPointer(start: raw.pixels, count: count))
        var exif: [UInt8] = []
        if let e = raw.exif {
            exif = [UInt8](UnsafeBufferPointer(start: e, count: Int(raw.exif_len)))
        }
        return RawImage(samples: samples, width: Int(raw.width), height: Int(raw.height),
                        channels: Int(raw.channels), depth: Int(raw.depth),
                        pngColorType: Int(raw.png_color_type), pngBitDepth: Int(raw.png_bit_depth),
                        hasTRNS: raw.png_has_trns != 0,
                        trns: [Int(raw.png_trns.0), Int(raw.png_trns.1), Int(raw.png_trns.2)], exif: exif)
    }
}
