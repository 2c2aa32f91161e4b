import CLoRANAS
import LoRANAS

// MARK: - images (decoding, the Pillow resample port, the Mllama image processor)

/// Decode options from the header's LORANAS_IMAGE_* flags; unknown bits are refused.
func decodeOptions(_ flags: Int32) throws -> ImageDecodeOptions {
    let known = Int32(LORANAS_IMAGE_EXIF_TRANSPOSE | LORANAS_IMAGE_DROP_ALPHA)
    try require(flags & ~known == 0, "unknown image flags \(flags)")
    return ImageDecodeOptions(exifTranspose: flags & Int32(LORANAS_IMAGE_EXIF_TRANSPOSE) != 0,
                              alpha: flags & Int32(LORANAS_IMAGE_DROP_ALPHA) != 0 ? .drop : .compositeOnWhite)
}

private func decode(_ bytes: UnsafePointer<UInt8>?, _ n: Int64, _ flags: Int32) throws -> RGBImage {
    try require(n >= 0, "n must be non-negative, got \(n)")
    let data = n == 0 ? UnsafeRawBufferPointer(start: nil, count: 0)
        : UnsafeRawBufferPointer(start: try arg(bytes, "bytes"), count: Int(n))
    return try ImageDecoder.decode(data, options: try decodeOptions(flags))
}

@_cdecl("loranas_image_decode")
public func loranas_image_decode(
    _ bytes: UnsafePointer<UInt8>?, _ n: Int64, _ flags: Int32, _ outRGB: UnsafeMutablePointer<UInt8>?,
    _ capacity: Int64, _ outH: UnsafeMutablePointer<Int64>?, _ outW: UnsafeMutablePointer<Int64>?
) -> Int32 {
    guarded {
        let outH = try arg(outH, "out_h")
        let outW = try arg(outW, "out_w")
        let image = try decode(bytes, n, flags)
        outH.pointee = Int64(image.height)
        outW.pointee = Int64(image.width)
        if outRGB == nil && capacity == 0 { return }
        let out = try buffer(outRGB, "out_rgb", count: capacity, needed: image.pixels.count)
        image.pixels.withUnsafeBufferPointer { out.update(from: $0.baseAddress!, count: $0.count) }
    }
}

@_cdecl("loranas_image_resize_rgb")
public func loranas_image_resize_rgb(
    _ rgb: UnsafePointer<UInt8>?, _ rgbCount: Int64, _ h: Int64, _ w: Int64, _ outH: Int64, _ outW: Int64,
    _ out: UnsafeMutablePointer<UInt8>?, _ outCount: Int64
) -> Int32 {
    guarded {
        let limit = Int64(1 << 20)
        try require(h >= 1 && w >= 1 && h <= limit && w <= limit, "h and w must be in 1...\(limit), got \(h)×\(w)")
        try require(outH >= 1 && outW >= 1 && outH <= limit && outW <= limit,
                    "out_h and out_w must be in 1...\(limit), got \(outH)×\(outW)")
        let src = try buffer(rgb, "rgb", count: rgbCount, needed: Int(h * w * 3))
        let dst = try buffer(out, "out", count: outCount, needed: Int(outH * outW * 3))
        let image = try RGBImage(width: Int(w), height: Int(h),
                                 pixels: Array(UnsafeBufferPointer(start: src, count: Int(h * w * 3))))
        let resized = try PillowResample.resize(image, width: Int(outW), height: Int(outH))
        resized.pixels.withUnsafeBufferPointer { dst.update(from: $0.baseAddress!, count: $0.count) }
    }
}

@_cdecl("loranas_image_process")
public func loranas_image_process(
    _ bytes: UnsafePointer<UInt8>?, _ n: Int64, _ flags: Int32, _ tileSize: Int64, _ maxTiles: Int64,
    _ mean: UnsafePointer<Double>?, _ std: UnsafePointer<Double>?, _ rescaleFactor: Double,
    _ pixelValues: UnsafeMutablePointer<Float>?, _ pixelValuesCount: Int64,
    _ aspectRatioId: UnsafeMutablePointer<Int64>?, _ aspectRatioMask: UnsafeMutablePointer<Int64>?,
    _ maskCount: Int64
) -> Int32 {
    guarded {
        let limits = Int64(MllamaImageProcessorSettings.maxTileSize)
        try require(tileSize >= 1 && tileSize <= limits, "tile_size must be in 1...\(limits), got \(tileSize)")
        let tiles = Int64(MllamaImageProcessorSettings.maxTileCount)
        try require(maxTiles >= 1 && maxTiles <= tiles, "max_tiles must be in 1...\(tiles), got \(maxTiles)")
        let meanValues = Array(UnsafeBufferPointer(start: try arg(mean, "mean"), count: 3))
        let stdValues = Array(UnsafeBufferPointer(start: try arg(std, "std"), count: 3))
        let settings = MllamaImageProcessorSettings(tileSize: Int(tileSize), maxImageTiles: Int(maxTiles),
                                                    imageMean: meanValues, imageStd: stdValues,
                                                    rescaleFactor: rescaleFactor)
        let processor = try MllamaImageProcessor(settings: settings)
        let needed = Int(maxTiles * 3 * tileSize * tileSize)
        let pixels = try buffer(pixelValues, "pixel_values", count: pixelValuesCount, needed: needed)
        let mask = try buffer(aspectRatioMask, "aspect_ratio_mask", count: maskCount, needed: Int(maxTiles))
        let id = try arg(aspectRatioId, "aspect_ratio_id")
        let result = try processor.process(try decode(bytes, n, flags))
        result.pixelValues.withUnsafeBufferPointer { pixels.update(from: $0.baseAddress!, count: needed) }
        result.aspectRatioMask.withUnsafeBufferPointer { mask.update(from: $0.baseAddress!, count: Int(maxTiles)) }
        id.pointee = Int64(result.aspectRatioId)
    }
}
