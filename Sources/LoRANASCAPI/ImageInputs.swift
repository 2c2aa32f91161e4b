import CLoRANAS
import LoRANAS

/// The images of a processor call (`loranas_image_input` entries), checked and turned into RGB images,
/// grouped by sample.
enum ImageInputs {
    /// The most images one call takes.
    static let maxCount: Int64 = 1 << 20

    /// `count` entries at `p` as `batchSize` lists of images: a sample index out of 0..<batchSize or smaller
    /// than the previous entry's, a bad size or a corrupt image is an error naming the entry.
    static func grouped(_ p: UnsafePointer<loranas_image_input>?, count: Int64, batchSize: Int) throws
        -> [[RGBImage]]
    {
        try require(count >= 0 && count <= maxCount, "num_images must be in 0...\(maxCount), got \(count)")
        var out = [[RGBImage]](repeating: [], count: batchSize)
        if count == 0 { return out }
        let entries = UnsafeBufferPointer(start: try arg(p, "images"), count: Int(count))
        var previous = 0
        for (i, entry) in entries.enumerated() {
            let sample = Int(entry.sample)
            try require(sample >= 0 && sample < batchSize,
                        "images[\(i)].sample is \(sample), outside 0..<\(batchSize) (the number of texts)")
            try require(sample >= previous,
                        "images[\(i)].sample is \(sample) after \(previous): images must be given in sample order")
            previous = sample
            let decoded: RGBImage
            do {
                decoded = try image(entry)
            } catch let e as LoRANASError {
                throw e.prefixed("images[\(i)] (sample \(sample)): ")
            }
            out[sample].append(decoded)
        }
        return out
    }

    /// One entry: encoded bytes when width = height = 0, raw (height, width, 3) RGB otherwise.
    static func image(_ entry: loranas_image_input) throws -> RGBImage {
        try require(entry.size >= 0, "size must be non-negative, got \(entry.size)")
        try require(entry.width >= 0 && entry.height >= 0,
                    "width and height must be non-negative, got \(entry.width)×\(entry.height)")
        let bytes = entry.size == 0 ? UnsafeRawBufferPointer(start: nil, count: 0)
            : UnsafeRawBufferPointer(start: try arg(entry.data, "data"), count: Int(entry.size))
        if entry.width == 0 && entry.height == 0 {
            return try ImageDecoder.decode(bytes, options: try decodeOptions(entry.flags))
        }
        return try raw(bytes, width: entry.width, height: entry.height, flags: entry.flags)
    }

    /// Raw RGB samples, under the same pixel limit as decoded images.
    private static func raw(_ bytes: UnsafeRawBufferPointer, width: Int64, height: Int64, flags: Int32) throws
        -> RGBImage
    {
        try require(width >= 1 && height >= 1, "raw RGB needs width and height ≥ 1, got \(width)×\(height)")
        try require(flags == 0, "flags must be 0 for raw RGB (they apply to encoded images), got \(flags)")
        let limit = Int64(ImageDecodeOptions.pillowMaxPixels)
        try require(width <= limit && height <= limit && width * height <= limit,
                    "image too large: \(width)×\(height) is over \(limit) pixels")
        let needed = width * height * 3
        try require(Int64(bytes.count) == needed,
                    "raw RGB of \(width)×\(height) needs size \(needed) (height·width·3), got \(bytes.count)")
        return try RGBImage(width: Int(width), height: Int(height), pixels: Array(bytes.bindMemory(to: UInt8.self)))
    }
}
