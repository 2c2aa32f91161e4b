import CImageIO

/// JPEG decoding (libjpeg-turbo) with Pillow's modes: grey ("L"), RGB (YCbCr converted by libjpeg
/// with its default ISLOW IDCT and fancy upsampling, as Pillow leaves them) and CMYK/YCCK, read
/// Adobe-inverted ("CMYK;I") and converted with Pillow's naive formula.
enum JPEGDecoder {
    static func isJPEG(_ bytes: UnsafeRawBufferPointer) -> Bool {
        bytes.count >= 3 && bytes[0] == 0xff && bytes[1] == 0xd8
    }

    /// The RGB image and the EXIF orientation (1…8; 1 when absent or invalid).
    static func decode(_ bytes: UnsafeRawBufferPointer, maxPixels: Int) throws -> (RGBImage, Int) {
        let raw = try RawImage.decode(bytes, maxPixels: maxPixels, format: "JPEG", with: lr_jpeg_decode)
        let pixels = raw.width * raw.height
        let rgb: [UInt8]
        switch raw.channels {
        case 1, 3:
            rgb = PillowConvert.rgb(from: raw.samples, channels: raw.channels, pixels: pixels, alpha: .drop)
        case 4:
            rgb = PillowConvert.rgb(fromInvertedCMYK: raw.samples, pixels: pixels)
        default:
            throw LoRANASError.unsupported("a JPEG with \(raw.channels) output components")
        }
        let orientation = ExifOrientation.read(raw.exif)
        return (RGBImage(unchecked: raw.width, raw.height, rgb), orientation)
    }
}
