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
