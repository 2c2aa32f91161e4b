/// An 8-bit RGB image: `pixels` is row-major (height, width, 3), as `np.asarray(im.convert("RGB"))`.
public struct RGBImage: Sendable, Equatable {
    /// Width in pixels.
    public let width: Int
    /// Height in pixels.
    public let height: Int
    /// The samples, (height, width, 3).
    public var pixels: [UInt8]

    /// An image from its samples; `pixels.count` must be height · width · 3 and both sides ≥ 1.
    public init(width: Int, height: Int, pixels: [UInt8]) throws {
        try require(width >= 1 && height >= 1, "an image needs width and height ≥ 1, got \(width)×\(height)")
        let (area, o1) = width.multipliedReportingOverflow(by: height)
        let (count, o2) = area.multipliedReportingOverflow(by: 3)
        try require(!o1 && !o2 && pixels.count == count,
                    "an RGB image of \(width)×\(height) needs \(count) samples, got \(pixels.count)")
        self.width = width
        self.height = height
        self.pixels = pixels
    }

    /// For internal producers whose sizes are already checked.
    init(unchecked width: Int, _ height: Int, _ pixels: [UInt8]) {
        self.width = width
        self.height = height
        self.pixels = pixels
    }
}
