/// How to turn encoded bytes into RGB: which of transformers' two input routes to follow, and the
/// pixel limit.
public struct ImageDecodeOptions: Sendable {
    /// Apply the EXIF orientation (Pillow's `ImageOps.exif_transpose`) of a JPEG APP1 or PNG eXIf chunk.
    public var exifTranspose: Bool
    /// Composite alpha onto white, or drop it.
    public var alpha: AlphaHandling
    /// The most pixels (width · height) accepted. Pillow raises DecompressionBombError above
    /// 2 × MAX_IMAGE_PIXELS = 178,956,970, checked before any pixel memory is allocated.
    public var maxPixels: Int

    /// Pillow's error threshold: 2 × 89,478,485.
    public static let pillowMaxPixels = 2 * 89_478_485

    /// Creates options; the defaults are the PIL-object route.
    public init(exifTranspose: Bool = false, alpha: AlphaHandling = .compositeOnWhite,
                maxPixels: Int = ImageDecodeOptions.pillowMaxPixels)
    {
        self.exifTranspose = exifTranspose
        self.alpha = alpha
        self.maxPixels = maxPixels
    }

    /// A PIL image passed to the processor (`Image.open(bytes)`): no EXIF transpose, alpha
    /// composited onto white (§1.2).
    public static let pilObject = ImageDecodeOptions()
    /// A path, URL or base64 string (transformers' `load_image`): `exif_transpose`, then a plain
    /// `convert("RGB")` that drops alpha (§1.1).
    public static let path = ImageDecodeOptions(exifTranspose: true, alpha: .drop)
}

/// Decodes PNG and JPEG bytes to an 8-bit RGB image as Pillow and transformers would.
public enum ImageDecoder {
    /// Decodes `bytes`; an unknown format, a corrupt or truncated file, or an image over the
    /// pixel limit throws a `LoRANASError` (never traps).
    public static func decode(_ bytes: [UInt8], options: ImageDecodeOptions = .pilObject) throws -> RGBImage {
        try bytes.withUnsafeBytes { try decode($0, options: options) }
    }

    /// Decodes the bytes in a raw buffer; see `decode(_:options:)`.
    public static func decode(_ bytes: UnsafeRawBufferPointer, options: ImageDecodeOptions = .pilObject) throws
        -> RGBImage
    {
        try require(options.maxPixels >= 1, "maxPixels must be ≥ 1, got \(options.maxPixels)")
        if bytes.count >= 8 && Array(bytes.prefix(8)) == PNGDecoder.signature {
            let (image, orientation) = try PNGDecoder.decode(bytes, maxPixels: options.maxPixels, alpha: options.alpha)
            return options.exifTranspose ? ExifOrientation.apply(orientation, to: image) : image
        }
        if JPEGDecoder.isJPEG(bytes) {
            let (image, orientation) = try JPEGDecoder.decode(bytes, maxPixels: options.maxPixels)
            return options.exifTranspose ? ExifOrientation.apply(orientation, to: image) : image
        }
        let head = bytes.prefix(8).map { String(format2: $0) }.joined(separator: " ")
        throw LoRANASError.format("unknown image format (not PNG or JPEG); first bytes: \(head)")
    }
}

private extension String {
    init(format2 byte: UInt8) {
        let digits = String(byte, radix: 16)
        self = digits.count == 1 ? "0" + digits : digits
    }
}
