import CImageIO

/// PNG decoding (libpng) with Pillow's reading and RGB conversion rules.
enum PNGDecoder {
    static let signature: [UInt8] = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]

    /// The RGB image and the EXIF orientation of an eXIf chunk (1 when absent).
    ///
    /// libpng expands palettes (with their tRNS alphas) and grey below 8 bits (scaled as Pillow's
    /// L;2 / L;4 / "1" unpackers scale: ×85, ×17, ×255); grey and RGB tRNS follow Pillow's rule below.
    /// 16-bit samples follow Pillow: grey opens as "I;16" and `convert("RGB")` clips it to 255;
    /// grey+alpha, RGB and RGBA open through the ";16B" unpackers, which keep the high byte.
    static func decode(_ bytes: UnsafeRawBufferPointer, maxPixels: Int, alpha: AlphaHandling) throws
        -> (RGBImage, Int)
    {
        let raw = try RawImage.decode(bytes, maxPixels: maxPixels, format: "PNG", with: lr_png_decode)
        let pixels = raw.width * raw.height
        var samples = raw.samples
        if raw.depth == 16 {
            let greyClips = raw.pngColorType == 0
            var eight = [UInt8](repeating: 0, count: pixels * raw.channels)
            for i in 0..<eight.count {
                let hi = samples[2 * i]
                let lo = samples[2 * i + 1]
                let isGreySample = greyClips && (raw.channels == 1 || i % 2 == 0)
                eight[i] = isGreySample ? (hi != 0 ? 255 : lo) : hi
            }
            samples = eight
        }
        var channels = raw.channels
        if raw.hasTRNS && (raw.pngColorType == 0 || raw.pngColorType == 2) && alpha == .compositeOnWhite {
            samples = pillowTransparency(samples, channels: channels, pixels: pixels, raw: raw)
            channels += 1
        }
        let rgb = PillowConvert.rgb(from: samples, channels: channels, pixels: pixels, alpha: alpha)
        return (RGBImage(unchecked: raw.width, raw.height, rgb), ExifOrientation.read(raw.exif))
    }

    /// Pillow's tRNS rule for grey and RGB (`convert_transparent`): a pixel is transparent when its
    /// 8-bit value (after Pillow's own unpacking: grey 2/4-bit scaled, 16-bit grey clipped, 16-bit RGB
    /// high byte) equals the stored tRNS value's low byte; a 1-bit tRNS of 1 means 255. Adds alpha.
    static func pillowTransparency(_ samples: [UInt8], channels: Int, pixels: Int, raw: RawImage) -> [UInt8] {
        var key = raw.trns.map { UInt8(truncatingIfNeeded: $0) }
        if raw.pngColorType == 0 && raw.pngBitDepth == 1 {
            key[0] = raw.trns[0] != 0 ? 255 : 0
        }
        var out = [UInt8](repeating: 0, count: pixels * (channels + 1))
        for i in 0..<pixels {
            var match = true
            for c in 0..<channels {
                let v = samples[i * channels + c]
                out[i * (channels + 1) + c] = v
                match = match && v == key[c]
            }
            out[i * (channels + 1) + channels] = match ? 0 : 255
        }
        return out
    }
}
