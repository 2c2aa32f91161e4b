// Pillow's conversions to RGB, as transformers' `convert_to_rgb` applies them
// (../shared/mllama-processor.md §1.2). Each function takes packed 8-bit samples.

/// What happens to an alpha channel (or tRNS transparency) when an image becomes RGB.
public enum AlphaHandling: Sendable {
    /// transformers' rule for PIL images: `alpha_composite(white RGBA, im.convert("RGBA"))`.
    case compositeOnWhite
    /// A plain `im.convert("RGB")`, as transformers' `load_image` does for paths: alpha is dropped.
    case drop
}

enum PillowConvert {
    /// Pillow's integer `ImagingAlphaComposite` (7 extra bits of precision, rounded divisions by 255)
    /// of a source sample `s` with alpha `a` over an opaque white destination.
    @inline(__always)
    static func overWhite(_ s: UInt8, alpha a: UInt8) -> UInt8 {
        if a == 0 { return 255 }
        let srcA = UInt32(a)
        let dstA: UInt32 = 255
        let blend = dstA * (255 - srcA)
        let outA255 = srcA * 255 + blend
        let coef1 = srcA * 255 * 255 * (1 << 7) / outA255
        let coef2 = 255 * (1 << 7) - coef1
        let tmp = UInt32(s) * coef1 + 255 * coef2 + (0x80 << 7)
        return UInt8(truncatingIfNeeded: (((tmp >> 8) + tmp) >> 8) >> 7)
    }

    /// Grey, grey+alpha, RGB or RGBA samples (`channels` = 1…4) to RGB.
    static func rgb(from samples: [UInt8], channels: Int, pixels: Int, alpha: AlphaHandling) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: pixels * 3)
        let composite = alpha == .compositeOnWhite
        samples.withUnsafeBufferPointer { src in
            out.withUnsafeMutableBufferPointer { dst in
                for i in 0..<pixels {
                    let p = i * channels
                    let hasAlpha = channels == 2 || channels == 4
                    let a = hasAlpha ? src[p + channels - 1] : 255
                    var r = src[p]
                    var g = channels >= 3 ? src[p + 1] : r
                    var b = channels >= 3 ? src[p + 2] : r
                    if hasAlpha && composite {
                        r = overWhite(r, alpha: a)
                        g = overWhite(g, alpha: a)
                        b = overWhite(b, alpha: a)
                    }
                    dst[i * 3] = r
                    dst[i * 3 + 1] = g
                    dst[i * 3 + 2] = b
                }
            }
        }
        return out
    }

    /// CMYK as libjpeg delivers an Adobe (inverted) JPEG to RGB. Pillow reads every CMYK JPEG as
    /// "CMYK;I" (inverting each sample) and converts with its naive `cmyk2rgb`:
    /// channel = clip(nk − round(c·nk / 255)), nk = 255 − k, with no ICC profile.
    static func rgb(fromInvertedCMYK samples: [UInt8], pixels: Int) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: pixels * 3)
        for i in 0..<pixels {
            let nk = Int(samples[i * 4 + 3])
            for c in 0..<3 {
                let value = 255 - Int(samples[i * 4 + c])
                let t = value * nk + 128
                let product = ((t >> 8) + t) >> 8
                out[i * 3 + c] = UInt8(clamping: nk - product)
            }
        }
        return out
    }
}
