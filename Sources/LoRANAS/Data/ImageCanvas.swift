/// transformers' tile-grid choice and resize target for Mllama (../shared/mllama-processor.md §1.3–1.4).
public enum MllamaCanvas {
    /// The supported (tile rows, tile columns) arrangements for `maxTiles`, in transformers' order:
    /// [(a, b) for a in 1...T for b in 1...T if a·b ≤ T]. An image's aspect ratio id is its index + 1.
    public static func arrangements(maxTiles: Int) -> [(rows: Int, cols: Int)] {
        var out: [(rows: Int, cols: Int)] = []
        for a in 1...max(maxTiles, 1) {
            for b in 1...max(maxTiles, 1) where a * b <= maxTiles {
                out.append((a, b))
            }
        }
        return out
    }

    /// `get_optimal_tiled_canvas`: the arrangement index for an image of `height × width`.
    /// Upscaling beats downscaling: the smallest scale ≥ 1 wins, else the largest scale; exact ties
    /// go to the smallest area, then to the first in `arrangements` order.
    public static func choose(height: Int, width: Int, tileSize t: Int, maxTiles: Int) -> Int {
        let options = arrangements(maxTiles: maxTiles)
        let scales = options.map { min(Double($0.rows * t) / Double(height), Double($0.cols * t) / Double(width)) }
        let upscales = scales.filter { $0 >= 1 }
        let best = upscales.min() ?? scales.max()!
        var chosen = -1
        for (i, s) in scales.enumerated() where s == best {
            if chosen < 0 || options[i].rows * options[i].cols < options[chosen].rows * options[chosen].cols {
                chosen = i
            }
        }
        return chosen
    }

    /// `get_image_size_fit_to_canvas`: the (height, width) to resize to for a canvas of
    /// `canvasHeight × canvasWidth`, with transformers' float64 floor (not integer division).
    public static func resizeTarget(height: Int, width: Int, canvasHeight: Int, canvasWidth: Int, tileSize t: Int)
        -> (height: Int, width: Int)
    {
        let targetW = min(max(width, t), canvasWidth)
        let targetH = min(max(height, t), canvasHeight)
        let scaleW = Double(targetW) / Double(width)
        let scaleH = Double(targetH) / Double(height)
        if scaleW < scaleH {
            let h = Int((Double(height) * scaleW).rounded(.down))
            return (min(h == 0 ? 1 : h, targetH), targetW)
        }
        let w = Int((Double(width) * scaleH).rounded(.down))
        return (targetH, min(w == 0 ? 1 : w, targetW))
    }
}

/// An image resized and padded onto its tile canvas, before rescale and normalize: (rows·t, cols·t, 3) uint8,
/// the resized image at the top left and zeros to the bottom and right (§1.6). This is what a pack stores; the
/// processor's float tiles are a pure function of it (``MllamaImageProcessor/tiles(_:into:)``).
public struct MllamaCanvasImage: Sendable, Equatable {
    /// Tile rows a.
    public let rows: Int
    /// Tile columns b.
    public let cols: Int
    /// The tile side t.
    public let tileSize: Int
    /// 1 + the arrangement's index in ``MllamaCanvas/arrangements(maxTiles:)``.
    public let aspectRatioId: Int
    /// (rows·t, cols·t, 3) samples.
    public let pixels: [UInt8]

    /// a·b, the tiles the image covers.
    public var tileCount: Int { rows * cols }

    /// A canvas; the pixel count must be rows·t · cols·t · 3 and the id must name (rows, cols) among the
    /// arrangements of `maxTiles`.
    public init(rows: Int, cols: Int, tileSize: Int, aspectRatioId: Int, maxTiles: Int, pixels: [UInt8]) throws {
        let options = MllamaCanvas.arrangements(maxTiles: maxTiles)
        try require(aspectRatioId >= 1 && aspectRatioId <= options.count,
                    "aspect ratio id \(aspectRatioId) is outside 1...\(options.count) for \(maxTiles) tiles")
        let arrangement = options[aspectRatioId - 1]
        try require(arrangement.rows == rows && arrangement.cols == cols,
                    "aspect ratio id \(aspectRatioId) is \(arrangement.rows)×\(arrangement.cols) tiles, "
                        + "not \(rows)×\(cols)")
        try require(tileSize >= 1 && tileSize <= MllamaImageProcessorSettings.maxTileSize,
                    "tile size \(tileSize) is outside 1...\(MllamaImageProcessorSettings.maxTileSize)")
        let count = Size.product([rows, tileSize, cols, tileSize, 3]) ?? -1
        try require(pixels.count == count, "a \(rows)×\(cols) canvas of \(tileSize)-pixel tiles has \(count) samples, "
                        + "got \(pixels.count)")
        self.rows = rows
        self.cols = cols
        self.tileSize = tileSize
        self.aspectRatioId = aspectRatioId
        self.pixels = pixels
    }
}
