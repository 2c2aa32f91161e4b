import CImageIO

/// PNG decoding (libpng) with Pillow's reading and RGB conversion rules.
enum PNGDecoder {
    static let signature: [UInt8] = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]

    /// libpng expands palettes (with their tRNS alphas), grey below 8 bits (scaled as Pillow's
    /// L;2 / L;4 / "1" unpackers scale: ×85, ×17, ×255) and tRNS colours to an alpha channel.
    /// 16-bit samples follow Pillow: grey opens as "I;16" and `convert("RGB")` clips it to 255;
    /// grey+alpha, RGB and RGBA open through the ";16B" unpackers, which keep the high byte.
    static func decode(_ bytes: UnsafeRawBufferPointer, maxPixels: Int, alpha: AlphaHandling) throws -> RGBImage {
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
        let rgb = PillowConvert.rgb(from: samples, channels: raw.channels, pixels: pixels, alpha: alpha)
        return RGBImage(unchecked: raw.width, raw.height, rgb)
    }
}
