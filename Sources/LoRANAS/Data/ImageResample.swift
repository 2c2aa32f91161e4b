/// A port of Pillow's separable, antialiased BILINEAR resampling for 8-bit RGB
/// (`Image.resize(size, BILINEAR, reducing_gap=None)`, libImaging/Resample.c), reproduced exactly:
/// per-output-pixel coefficients in float64, turned into 22-bit fixed point, int32 accumulation
/// from a half, two passes with a uint8 image between them (horizontal first, except where Pillow 13 runs
/// the vertical pass first; see `resize`).
public enum PillowResample {
    /// Fixed-point precision: 32 bits minus 8 for the value and 2 for filter overshoot.
    static let precisionBits = 22

    /// The filter taps of each output pixel along one axis: output i reads input
    /// `start[i] ..< start[i] + count[i]` with weights `weights[i * ksize ..< i * ksize + count[i]]`.
    struct Coefficients {
        let ksize: Int
        let start: [Int]
        let count: [Int]
        let weights: [Int32]
    }

    /// Pillow's triangle filter, support 1.
    @inline(__always)
    static func bilinear(_ x: Double) -> Double {
        let a = x < 0 ? -x : x
        return a < 1 ? 1 - a : 0
    }

    /// Coefficients for resizing `inSize` samples to `outSize` (Pillow's `precompute_coeffs` over the
    /// whole input, followed by `normalize_coeffs_8bpc`).
    static func coefficients(inSize: Int, outSize: Int) -> Coefficients {
        let scale = Double(inSize) / Double(outSize)
        let filterScale = max(scale, 1.0)
        let support = 1.0 * filterScale
        let ksize = Int(support.rounded(.up)) * 2 + 1
        var start = [Int](repeating: 0, count: outSize)
        var count = [Int](repeating: 0, count: outSize)
        var weights = [Int32](repeating: 0, count: outSize * ksize)
        var k = [Double](repeating: 0, count: ksize)
        let ss = 1.0 / filterScale
        for xx in 0..<outSize {
            let center = 0.0 + (Double(xx) + 0.5) * scale
            // C's (int) cast truncates toward zero.
            let xmin = max(Int(center - support + 0.5), 0)
            let xmax = min(Int(center + support + 0.5), inSize) - xmin
            var ww = 0.0
            for x in 0..<max(xmax, 0) {
                let w = bilinear((Double(x + xmin) - center + 0.5) * ss)
                k[x] = w
                ww += w
            }
            for x in 0..<max(xmax, 0) {
                let v = ww != 0 ? k[x] / ww : k[x]
                let fixed = v * Double(1 << precisionBits)
                weights[xx * ksize + x] = Int32(v < 0 ? -0.5 + fixed : 0.5 + fixed)
            }
            start[xx] = xmin
            count[xx] = max(xmax, 0)
        }
        return Coefficients(ksize: ksize, start: start, count: count, weights: weights)
    }

    /// Pillow's `clip8`: the accumulator shifted down and clamped to 0…255.
    @inline(__always)
    static func clip8(_ acc: Int32) -> UInt8 {
        UInt8(clamping: acc >> Int32(precisionBits))
    }

    /// Resizes `image` to `width × height` as Pillow 13 does. The same size returns a copy. A pass whose
    /// size does not change is skipped. Horizontal first covers only the rows the vertical pass reads
    /// (Pillow's row-bounds trick, which does not change the result). Pillow 13.0 runs the vertical pass
    /// first when the height shrinks and 2·(W − w) < H − h; Pillow ≤ 12 always ran horizontal first, so
    /// results differ by ±1 from older Pillow in those cases.
    public static func resize(_ image: RGBImage, width: Int, height: Int) throws -> RGBImage {
        try require(width >= 1 && height >= 1, "resize target must be ≥ 1×1, got \(width)×\(height)")
        try require(width <= 1 << 20 && height <= 1 << 20, "resize target \(width)×\(height) is too large")
        try require(width * height <= Int(Int32.max), "resize target \(width)×\(height) has too many pixels")
        if width == image.width && height == image.height { return image }
        let needHorizontal = width != image.width
        let needVertical = height != image.height
        let vertical = coefficients(inSize: image.height, outSize: height)
        // Pillow 13 (python-pillow/Pillow#9549) runs the vertical pass first when the height shrinks by more
        // than twice as many pixels as the width does; the order changes the rounding between the passes.
        let verticalFirst = height < image.height && 2 * (image.width - width) < image.height - height
        var current = image
        if verticalFirst {
            current = verticalPass(current, height: height, coefficients: vertical, rowOffset: 0)
            if needHorizontal {
                current = horizontal(current, width: width, rows: 0..<height)
            }
            return current
        }
        var rowOffset = 0
        if needHorizontal {
            let firstRow = needVertical ? vertical.start[0] : 0
            let lastRow = needVertical ? vertical.start[height - 1] + vertical.count[height - 1] : image.height
            current = horizontal(image, width: width, rows: firstRow..<lastRow)
            rowOffset = firstRow
        }
        if needVertical {
            current = verticalPass(current, height: height, coefficients: vertical, rowOffset: rowOffset)
        }
        return current
    }

    /// Rows `rows` of `image`, resized horizontally to `width`.
    static func horizontal(_ image: RGBImage, width: Int, rows: Range<Int>) -> RGBImage {
        let c = coefficients(inSize: image.width, outSize: width)
        var out = [UInt8](repeating: 0, count: rows.count * width * 3)
        let half = Int32(1 << (precisionBits - 1))
        image.pixels.withUnsafeBufferPointer { src in
            out.withUnsafeMutableBufferPointer { dst in
                c.weights.withUnsafeBufferPointer { kk in
                    for (yy, y) in rows.enumerated() {
                        let row = y * image.width * 3
                        for xx in 0..<width {
                            let k = xx * c.ksize
                            var s0 = half
                            var s1 = half
                            var s2 = half
                            for x in 0..<c.count[xx] {
                                let p = row + (x + c.start[xx]) * 3
                                let w = kk[k + x]
                                s0 &+= Int32(src[p]) &* w
                                s1 &+= Int32(src[p + 1]) &* w
                                s2 &+= Int32(src[p + 2]) &* w
                            }
                            let o = (yy * width + xx) * 3
                            dst[o] = clip8(s0)
                            dst[o + 1] = clip8(s1)
                            dst[o + 2] = clip8(s2)
                        }
                    }
                }
            }
        }
        return RGBImage(unchecked: width, rows.count, out)
    }

    /// `image` resized vertically to `height`; its row 0 is source row `rowOffset`.
    static func verticalPass(_ image: RGBImage, height: Int, coefficients c: Coefficients, rowOffset: Int)
        -> RGBImage
    {
        let width = image.width
        var out = [UInt8](repeating: 0, count: height * width * 3)
        let half = Int32(1 << (precisionBits - 1))
        image.pixels.withUnsafeBufferPointer { src in
            out.withUnsafeMutableBufferPointer { dst in
                c.weights.withUnsafeBufferPointer { kk in
                    for yy in 0..<height {
                        let k = yy * c.ksize
                        let first = c.start[yy] - rowOffset
                        for i in 0..<(width * 3) {
                            var s = half
                            for y in 0..<c.count[yy] {
                                s &+= Int32(src[(first + y) * width * 3 + i]) &* kk[k + y]
                            }
                            dst[yy * width * 3 + i] = clip8(s)
                        }
                    }
                }
            }
        }
        return RGBImage(unchecked: width, height, out)
    }
}
