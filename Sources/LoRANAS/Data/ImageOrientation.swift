/// EXIF orientation (tag 0x0112) and Pillow's `ImageOps.exif_transpose` on RGB images.
///
/// transformers applies `exif_transpose` only to images it loads from a path, URL or base64 string
/// (`load_image`), never to PIL images a caller passes in (../shared/mllama-processor.md §1.1).
enum ExifOrientation {
    /// The orientation in a TIFF-structured EXIF payload (after "Exif\0\0"); 1 when absent,
    /// malformed or out of 1…8. Every read is bounds-checked.
    static func read(_ exif: [UInt8]) -> Int {
        guard exif.count >= 8 else { return 1 }
        let little: Bool
        if exif[0] == 0x49 && exif[1] == 0x49 {
            little = true
        } else if exif[0] == 0x4d && exif[1] == 0x4d {
            little = false
        } else {
            return 1
        }
        func u16(_ at: Int) -> Int? {
            guard at >= 0, at + 2 <= exif.count else { return nil }
            let a = Int(exif[at])
            let b = Int(exif[at + 1])
            return little ? a | b << 8 : a << 8 | b
        }
        func u32(_ at: Int) -> Int? {
            guard let lo = u16(little ? at : at + 2), let hi = u16(little ? at + 2 : at) else { return nil }
            return hi << 16 | lo
        }
        guard u16(2) == 42, let ifd = u32(4), let count = u16(ifd) else { return 1 }
        for entry in 0..<count {
            let at = ifd + 2 + entry * 12
            guard let tag = u16(at) else { return 1 }
            if tag == 0x0112 {
                // SHORT as the standard says; Pillow reads a LONG the same way.
                let type = u16(at + 2)
                let value = type == 3 ? u16(at + 8) : type == 4 ? u32(at + 8) : nil
                guard let value, (1...8).contains(value) else { return 1 }
                return value
            }
        }
        return 1
    }

    /// Pillow's transpose for an orientation: 2 FLIP_LEFT_RIGHT, 3 ROTATE_180, 4 FLIP_TOP_BOTTOM,
    /// 5 TRANSPOSE, 6 ROTATE_270, 7 TRANSVERSE, 8 ROTATE_90 (counter-clockwise); 1 is the identity.
    static func apply(_ orientation: Int, to image: RGBImage) -> RGBImage {
        let w = image.width
        let h = image.height
        let swaps = orientation >= 5
        let outW = swaps ? h : w
        let outH = swaps ? w : h
        if orientation <= 1 || orientation > 8 { return image }
        var out = [UInt8](repeating: 0, count: image.pixels.count)
        for r in 0..<outH {
            for c in 0..<outW {
                // (sr, sc): the source pixel of output pixel (r, c).
                let sr: Int
                let sc: Int
                switch orientation {
                case 2: (sr, sc) = (r, w - 1 - c)
                case 3: (sr, sc) = (h - 1 - r, w - 1 - c)
                case 4: (sr, sc) = (h - 1 - r, c)
                case 5: (sr, sc) = (c, r)
                case 6: (sr, sc) = (h - 1 - c, r)
                case 7: (sr, sc) = (h - 1 - c, w - 1 - r)
                default: (sr, sc) = (c, w - 1 - r)
                }
                let o = (r * outW + c) * 3
                let s = (sr * w + sc) * 3
                out[o] = image.pixels[s]
                out[o + 1] = image.pixels[s + 1]
                out[o + 2] = image.pixels[s + 2]
            }
        }
        return RGBImage(unchecked: outW, outH, out)
    }
}
