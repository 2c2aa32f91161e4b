/// The settings of transformers' `MllamaImageProcessor`; the defaults are the class defaults
/// (../shared/mllama-processor.md §1.10). Published checkpoints use 560, CLIP mean and std.
public struct MllamaImageProcessorSettings: Sendable, Equatable {
    /// Tile side t (`size["height"]`, which must equal `size["width"]`).
    public var tileSize: Int
    /// Tiles per image T (`max_image_tiles`).
    public var maxImageTiles: Int
    /// Per-channel mean (`image_mean`).
    public var imageMean: [Double]
    /// Per-channel standard deviation (`image_std`).
    public var imageStd: [Double]
    /// `rescale_factor`, 1/255 by default.
    public var rescaleFactor: Double

    /// The largest tile side and tile count accepted.
    public static let maxTileSize = 4096
    public static let maxTileCount = 64

    /// Creates settings; the defaults are `MllamaImageProcessor()`'s.
    public init(tileSize: Int = 224, maxImageTiles: Int = 4, imageMean: [Double] = [0.5, 0.5, 0.5],
                imageStd: [Double] = [0.5, 0.5, 0.5], rescaleFactor: Double = 1.0 / 255.0)
    {
        self.tileSize = tileSize
        self.maxImageTiles = maxImageTiles
        self.imageMean = imageMean
        self.imageStd = imageStd
        self.rescaleFactor = rescaleFactor
    }

    /// Checks every setting.
    public func validate() throws {
        try require((1...Self.maxTileSize).contains(tileSize),
                    "tile size must be in 1...\(Self.maxTileSize), got \(tileSize)")
        try require((1...Self.maxTileCount).contains(maxImageTiles),
                    "max_image_tiles must be in 1...\(Self.maxTileCount), got \(maxImageTiles)")
        try require(imageMean.count == 3 && imageMean.allSatisfy(\.isFinite), "image_mean must be 3 finite numbers")
        try require(imageStd.count == 3 && imageStd.allSatisfy { $0.isFinite && $0 != 0 },
                    "image_std must be 3 finite non-zero numbers")
        try require(rescaleFactor.isFinite, "rescale_factor must be finite")
    }
}

/// One image's processor output.
public struct MllamaProcessedImage: Sendable {
    /// (T, 3, t, t) float32; tiles past `tileCount` are 0.
    public var pixelValues: [Float]
    /// 1 + the arrangement's index in `MllamaCanvas.arrangements`.
    public var aspectRatioId: Int
    /// (T): 1 for the first `tileCount` tiles (and always tile 0), else 0.
    public var aspectRatioMask: [Int64]
    /// Tile rows · tile columns.
    public var tileCount: Int
}

/// One sample's images, packed as transformers packs them (§1.9).
public struct MllamaProcessedSample: Sendable {
    /// Images I.
    public var imageCount: Int
    /// (I, T, 3, t, t) float32.
    public var pixelValues: [Float]
    /// (I).
    public var aspectRatioIds: [Int64]
    /// (I, T).
    public var aspectRatioMask: [Int64]
}

/// transformers' `MllamaImageProcessorPil`: canvas choice, Pillow bilinear resize, bottom/right zero
/// padding, rescale and normalize in float32, and row-major tiles.
public struct MllamaImageProcessor: Sendable {
    /// The settings.
    public let settings: MllamaImageProcessorSettings
    /// The normalised value of each uint8 per channel (3 × 256).
    private let lookup: [Float]

    /// A processor; the settings are validated.
    public init(settings: MllamaImageProcessorSettings = .init()) throws {
        try settings.validate()
        self.settings = settings
        lookup = Self.normalization(settings)
    }

    /// Processes one RGB image: its canvas, then its tiles.
    public func process(_ image: RGBImage) throws -> MllamaProcessedImage {
        let canvas = try canvas(image)
        let maxTiles = settings.maxImageTiles
        let tileSize = settings.tileSize
        try Memory.require(Size.product([maxTiles, 3, tileSize, tileSize, MemoryLayout<Float>.size]),
                           for: "pixel_values")
        var pixels = [Float](repeating: 0, count: maxTiles * 3 * tileSize * tileSize)
        try pixels.withUnsafeMutableBufferPointer { try tiles(canvas, into: $0) }
        return MllamaProcessedImage(pixelValues: pixels, aspectRatioId: canvas.aspectRatioId,
                                    aspectRatioMask: aspectRatioMask(canvas), tileCount: canvas.tileCount)
    }

    /// The canvas choice, Pillow's bilinear resize and the bottom/right zero padding (§1.3–1.6).
    public func canvas(_ image: RGBImage) throws -> MllamaCanvasImage {
        let t = settings.tileSize
        let maxTiles = settings.maxImageTiles
        let index = MllamaCanvas.choose(height: image.height, width: image.width, tileSize: t, maxTiles: maxTiles)
        let (rows, cols) = MllamaCanvas.arrangements(maxTiles: maxTiles)[index]
        let target = MllamaCanvas.resizeTarget(height: image.height, width: image.width, canvasHeight: rows * t,
                                               canvasWidth: cols * t, tileSize: t)
        let resized = try PillowResample.resize(image, width: target.width, height: target.height)
        let width = cols * t
        try Memory.require(Size.product([rows * t, width, 3]), for: "the image canvas")
        var pixels = [UInt8](repeating: 0, count: rows * t * width * 3)
        let rowBytes = resized.width * 3
        for y in 0..<resized.height {
            pixels.replaceSubrange((y * width * 3)..<(y * width * 3 + rowBytes),
                                   with: resized.pixels[(y * rowBytes)..<((y + 1) * rowBytes)])
        }
        return try MllamaCanvasImage(rows: rows, cols: cols, tileSize: t, aspectRatioId: index + 1,
                                     maxTiles: maxTiles, pixels: pixels)
    }

    /// Rescales, normalizes and tiles `canvas` into `out`, (T, 3, t, t) float32 row-major tiles (§1.7–1.8); the
    /// tiles past the canvas's are zero. `out` must hold T·3·t·t values, and the canvas must use these settings.
    public func tiles(_ canvas: MllamaCanvasImage, into out: UnsafeMutableBufferPointer<Float>) throws {
        let t = settings.tileSize
        let tileArea = t * t
        try require(canvas.tileSize == t && canvas.tileCount <= settings.maxImageTiles,
                    "a canvas of \(canvas.tileCount) \(canvas.tileSize)-pixel tiles does not fit "
                        + "\(settings.maxImageTiles) tiles of \(t)")
        try require(out.count == settings.maxImageTiles * 3 * tileArea,
                    "pixel buffer of \(out.count) floats for \(settings.maxImageTiles) tiles of \(t)")
        fill(canvas, into: out)
    }

    /// The work of ``tiles(_:into:)`` after its checks. Kept apart and non-throwing: inlined into the throwing
    /// function, Swift 6.3's release build returned a garbage error from it (a crash in the caller's `catch`).
    @inline(never)
    private func fill(_ canvas: MllamaCanvasImage, into out: UnsafeMutableBufferPointer<Float>) {
        let t = settings.tileSize
        let tileArea = t * t
        guard let base = out.baseAddress else { return }
        let width = canvas.cols * t
        lookup.withUnsafeBufferPointer { lut in
            canvas.pixels.withUnsafeBufferPointer { src in
                for tile in 0..<canvas.tileCount {
                    let (r, col) = tile.quotientAndRemainder(dividingBy: canvas.cols)
                    let planes = base + tile * 3 * tileArea
                    for y in 0..<t {
                        var p = ((r * t + y) * width + col * t) * 3
                        for x in 0..<t {
                            planes[y * t + x] = lut[Int(src[p])]
                            planes[tileArea + y * t + x] = lut[256 + Int(src[p + 1])]
                            planes[2 * tileArea + y * t + x] = lut[512 + Int(src[p + 2])]
                            p += 3
                        }
                    }
                }
            }
        }
        let used = canvas.tileCount * 3 * tileArea
        (base + used).update(repeating: 0, count: out.count - used)
    }

    /// (T): 1 for the canvas's tiles (and always tile 0), else 0.
    public func aspectRatioMask(_ canvas: MllamaCanvasImage) -> [Int64] {
        var mask = [Int64](repeating: 0, count: settings.maxImageTiles)
        for i in 0..<max(1, min(canvas.tileCount, mask.count)) { mask[i] = 1 }
        return mask
    }

    /// The normalised value of each uint8 per channel: float32(float64(u) · factor), then
    /// (x − float32(mean)) / float32(std) in float32, as numpy computes it.
    private static func normalization(_ settings: MllamaImageProcessorSettings) -> [Float] {
        var table = [Float](repeating: 0, count: 3 * 256)
        for c in 0..<3 {
            let mean = Float(settings.imageMean[c])
            let std = Float(settings.imageStd[c])
            for u in 0..<256 {
                let x = Float(Double(u) * settings.rescaleFactor)
                table[c * 256 + u] = (x - mean) / std
            }
        }
        return table
    }

    /// Processes one sample's images (I may be 0) into (I, T, 3, t, t), (I) and (I, T).
    public func process(_ images: [RGBImage]) throws -> MllamaProcessedSample {
        var pixels: [Float] = []
        var ids: [Int64] = []
        var mask: [Int64] = []
        for image in images {
            let one = try process(image)
            pixels += one.pixelValues
            ids.append(Int64(one.aspectRatioId))
            mask += one.aspectRatioMask
        }
        return MllamaProcessedSample(imageCount: images.count, pixelValues: pixels, aspectRatioIds: ids,
                                     aspectRatioMask: mask)
    }
}
