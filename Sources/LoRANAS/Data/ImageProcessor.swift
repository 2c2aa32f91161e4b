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

    /// A processor; the settings are validated.
    public init(settings: MllamaImageProcessorSettings = .init()) throws {
        try settings.validate()
        self.settings = settings
    }

    /// Processes one RGB image.
    public func process(_ image: RGBImage) throws -> MllamaProcessedImage {
        let t = settings.tileSize
        let maxTiles = settings.maxImageTiles
        let options = MllamaCanvas.arrangements(maxTiles: maxTiles)
        let index = MllamaCanvas.choose(height: image.height, width: image.width, tileSize: t, maxTiles: maxTiles)
        let (rows, cols) = options[index]
        let target = MllamaCanvas.resizeTarget(height: image.height, width: image.width, canvasHeight: rows * t,
                                               canvasWidth: cols * t, tileSize: t)
        let resized = try PillowResample.resize(image, width: target.width, height: target.height)
        let tileArea = t * t
        try Memory.require(Size.product([maxTiles, 3, tileArea, MemoryLayout<Float>.size]), for: "pixel_values")
        var pixels = [Float](repeating: 0, count: maxTiles * 3 * tileArea)
        // The normalised value of each uint8 per channel: float32(float64(u) · factor), then
        // (x − float32(mean)) / float32(std) in float32, as numpy computes it.
        var table = [Float](repeating: 0, count: 3 * 256)
        for c in 0..<3 {
            let mean = Float(settings.imageMean[c])
            let std = Float(settings.imageStd[c])
            for u in 0..<256 {
                let x = Float(Double(u) * settings.rescaleFactor)
                table[c * 256 + u] = (x - mean) / std
            }
        }
        pixels.withUnsafeMutableBufferPointer { out in
            resized.pixels.withUnsafeBufferPointer { src in
                for r in 0..<rows {
                    for col in 0..<cols {
                        let tile = r * cols + col
                        for c in 0..<3 {
                            let plane = (tile * 3 + c) * tileArea
                            for y in 0..<t {
                                let sy = r * t + y
                                for x in 0..<t {
                                    let sx = col * t + x
                                    let inside = sy < resized.height && sx < resized.width
                                    let u = inside ? Int(src[(sy * resized.width + sx) * 3 + c]) : 0
                                    out[plane + y * t + x] = table[c * 256 + u]
                                }
                            }
                        }
                    }
                }
            }
        }
        var mask = [Int64](repeating: 0, count: maxTiles)
        for i in 0..<(rows * cols) { mask[i] = 1 }
        return MllamaProcessedImage(pixelValues: pixels, aspectRatioId: index + 1, aspectRatioMask: mask,
                                    tileCount: rows * cols)
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
