import Foundation
import XCTest
@testable import LoRANAS
@testable import LoRANASCAPI

/// Image decoding errors are errors, never traps; a few exact cases whose expected values came from
/// Pillow 13 and transformers 5.24 (python/tests/test_image_processor.py compares at scale).
final class ImageTests: XCTestCase {
    /// A 2×2 RGBA PNG written by Pillow: alphas 0, 128, 255, 1.
    static let png: [UInt8] = [
        137, 80, 78, 71, 13, 10, 26, 10, 0, 0, 0, 13, 73, 72, 68, 82, 0, 0, 0, 2, 0, 0, 0, 2, 8, 6, 0, 0, 0, 114,
        182, 13, 36, 0, 0, 0, 26, 73, 68, 65, 84, 120, 156, 99, 248, 207, 192, 192, 192, 117, 66, 174, 129, 129,
        129, 225, 255, 255, 168, 168, 40, 70, 0, 47, 77, 5, 125, 98, 255, 79, 219, 0, 0, 0, 0, 73, 69, 78, 68,
        174, 66, 96, 130,
    ]
    /// An 8×8 baseline JPEG written by Pillow (quality 90).
    static let jpeg = [UInt8](
        Data(
            base64Encoded: [
                "/9j/4AAQSkZJRgABAQAAAQABAAD/2wBDAAMCAgMCAgMDAwMEAwMEBQgFBQQEBQoHBwYIDAoMDAsKCwsNDhIQDQ4RDgsLEBYQERMU",
                "FRUVDA8XGBYUGBIUFRT/2wBDAQMEBAUEBQkFBQkUDQsNFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQUFBQU",
                "FBQUFBQUFBT/wAARCAAIAAgDASIAAhEBAxEB/8QAHwAAAQUBAQEBAQEAAAAAAAAAAAECAwQFBgcICQoL/8QAtRAAAgEDAwIEAwUF",
                "BAQAAAF9AQIDAAQRBRIhMUEGE1FhByJxFDKBkaEII0KxwRVS0fAkM2JyggkKFhcYGRolJicoKSo0NTY3ODk6Q0RFRkdISUpTVFVW",
                "V1hZWmNkZWZnaGlqc3R1dnd4eXqDhIWGh4iJipKTlJWWl5iZmqKjpKWmp6ipqrKztLW2t7i5usLDxMXGx8jJytLT1NXW19jZ2uHi",
                "4+Tl5ufo6erx8vP09fb3+Pn6/8QAHwEAAwEBAQEBAQEBAQAAAAAAAAECAwQFBgcICQoL/8QAtREAAgECBAQDBAcFBAQAAQJ3AAEC",
                "AxEEBSExBhJBUQdhcRMiMoEIFEKRobHBCSMzUvAVYnLRChYkNOEl8RcYGRomJygpKjU2Nzg5OkNERUZHSElKU1RVVldYWVpjZGVm",
                "Z2hpanN0dXZ3eHl6goOEhYaHiImKkpOUlZaXmJmaoqOkpaanqKmqsrO0tba3uLm6wsPExcbHyMnK0tPU1dbX2Nna4uPk5ebn6Onq",
                "8vP09fb3+Pn6/9oADAMBAAIRAxEAPwDyjRP2JPu/6B/45RRRVkH/2Q==",
            ].joined())!)

    func testPNGAlphaCompositedOntoWhiteAsTransformers() throws {
        let image = try ImageDecoder.decode(Self.png)
        XCTAssertEqual(image.width, 2)
        XCTAssertEqual(image.height, 2)
        XCTAssertEqual(image.pixels, [255, 255, 255, 132, 227, 142, 0, 0, 255, 254, 254, 254])
        let dropped = try ImageDecoder.decode(Self.png, options: .path)
        XCTAssertEqual(dropped.pixels, [255, 0, 0, 10, 200, 30, 0, 0, 255, 90, 90, 90])
    }

    func testJPEGDecodesAsPillow() throws {
        let image = try ImageDecoder.decode(Self.jpeg)
        XCTAssertEqual(image.width, 8)
        XCTAssertEqual(Array(image.pixels.prefix(6)), [0, 1, 3, 3, 4, 6])
    }

    func testEveryTruncationIsAnError() {
        for data in [Self.png, Self.jpeg] {
            for n in 0..<data.count {
                XCTAssertThrowsError(try ImageDecoder.decode(Array(data.prefix(n))), "prefix \(n)") { error in
                    XCTAssertTrue(error is LoRANASError, "\(error)")
                }
            }
        }
    }

    func testGarbageAndCorruptBytesAreFormatErrors() {
        var rng = SplitMix64(seed: 8)
        for data in [Self.png, Self.jpeg] {
            for _ in 0..<200 {
                var bad = data
                for _ in 0..<3 {
                    bad[8 + Int(rng.next() % UInt64(bad.count - 8))] = UInt8(truncatingIfNeeded: rng.next())
                }
                // A flipped byte may still decode (e.g. inside JPEG entropy data); it must not trap.
                _ = try? ImageDecoder.decode(bad)
            }
        }
        XCTAssertThrowsError(try ImageDecoder.decode(Array("GIF89a not supported".utf8))) { error in
            guard case LoRANASError.format(let message) = error else { return XCTFail("\(error)") }
            XCTAssertTrue(message.contains("unknown image format"), message)
        }
    }

    func testPixelLimitIsCheckedBeforeDecoding() throws {
        // IHDR claims 20000 × 9000 = 180 M pixels, over Pillow's 2 × 89,478,485.
        var huge = Self.png
        let size: [UInt8] = [0, 0, 0x4e, 0x20, 0, 0, 0x23, 0x28]
        huge.replaceSubrange(16..<24, with: size)
        let crc = crc32(Array(huge[12..<29]))
        huge.replaceSubrange(29..<33, with: [24, 16, 8, 0].map { UInt8(truncatingIfNeeded: crc >> UInt32($0)) })
        XCTAssertThrowsError(try ImageDecoder.decode(huge)) { error in
            XCTAssertTrue("\(error)".contains("too large"), "\(error)")
        }
        let small = ImageDecodeOptions(maxPixels: 3)
        XCTAssertThrowsError(try ImageDecoder.decode(Self.png, options: small))
        XCTAssertThrowsError(try ImageDecoder.decode(Self.jpeg, options: small))
    }

    func testResizeExactAgainstPillow() throws {
        let src = try RGBImage(width: 3, height: 1, pixels: [0, 100, 255, 255, 50, 0, 10, 20, 30])
        let up = try PillowResample.resize(src, width: 5, height: 2)
        XCTAssertEqual(
            up.pixels,
            [
                0, 100, 255, 102, 80, 153, 255, 50, 0, 108, 32, 18, 10, 20, 30,
                0, 100, 255, 102, 80, 153, 255, 50, 0, 108, 32, 18, 10, 20, 30,
            ])
        let down = try PillowResample.resize(src, width: 2, height: 1)
        XCTAssertEqual(down.pixels, [96, 81, 159, 102, 31, 19])
    }

    func testCanvasAndResizeTargetExamplesFromTheSpec() {
        // W×H → aspect ratio id with t = 560, T = 4 (mllama-processor.md §1.3).
        let cases: [(Int, Int, Int)] = [
            (640, 480, 2), (480, 640, 5), (1920, 1080, 6), (300, 300, 1),
            (2000, 500, 4), (1200, 300, 3), (561, 561, 6),
        ]
        for (w, h, id) in cases {
            let index = MllamaCanvas.choose(height: h, width: w, tileSize: 560, maxTiles: 4)
            XCTAssertEqual(index + 1, id, "\(w)×\(h)")
        }
        // The float64 floor, not integer division (§1.4).
        let a = MllamaCanvas.resizeTarget(height: 55, width: 55, canvasHeight: 56, canvasWidth: 56, tileSize: 56)
        XCTAssertEqual(a.height, 56)
        XCTAssertEqual(a.width, 55)
        let b = MllamaCanvas.resizeTarget(height: 45, width: 100, canvasHeight: 560, canvasWidth: 560, tileSize: 560)
        XCTAssertEqual(b.height, 251)
        XCTAssertEqual(b.width, 560)
    }

    func testProcessorPacksPaddingAndMask() throws {
        let processor = try MllamaImageProcessor(settings: .init(tileSize: 4, maxImageTiles: 4))
        let image = try RGBImage(width: 8, height: 2, pixels: [UInt8](repeating: 255, count: 8 * 2 * 3))
        let sample = try processor.process([image, image])
        XCTAssertEqual(sample.pixelValues.count, 2 * 4 * 3 * 4 * 4)
        XCTAssertEqual(sample.aspectRatioIds, [2, 2])
        XCTAssertEqual(sample.aspectRatioMask, [1, 1, 0, 0, 1, 1, 0, 0])
        // Tile 0, channel 0: rows 0-1 are the image (1.0), rows 2-3 padding ((0 − 0.5) / 0.5 = −1).
        let expected = [Float](repeating: 1, count: 8) + [Float](repeating: -1, count: 8)
        XCTAssertEqual(Array(sample.pixelValues[0..<16]), expected)
        // Unused tiles are exactly 0.
        XCTAssertTrue(sample.pixelValues[(2 * 48)..<(4 * 48)].allSatisfy { $0 == 0 })
        XCTAssertThrowsError(try MllamaImageProcessor(settings: .init(tileSize: 0)))
        XCTAssertThrowsError(try MllamaImageProcessor(settings: .init(imageStd: [1, 0, 1])))
    }

    func testABIRefusesBadArgumentsWithoutTrapping() {
        var h: Int64 = 0
        var w: Int64 = 0
        XCTAssertNotEqual(loranas_image_decode(nil, 10, 0, nil, 0, &h, &w), 0)
        XCTAssertNotEqual(
            Self.png.withUnsafeBufferPointer {
                loranas_image_decode($0.baseAddress, 10, 99, nil, 0, &h, &w)
            }, 0)
        XCTAssertEqual(
            Self.png.withUnsafeBufferPointer {
                loranas_image_decode($0.baseAddress, Int64($0.count), 0, nil, 0, &h, &w)
            }, 0)
        XCTAssertEqual([h, w], [2, 2])
        var small = [UInt8](repeating: 0, count: 5)
        XCTAssertNotEqual(
            Self.png.withUnsafeBufferPointer { src in
                small.withUnsafeMutableBufferPointer {
                    loranas_image_decode(src.baseAddress, Int64(src.count), 0, $0.baseAddress, 5, &h, &w)
                }
            }, 0)
    }

    func testExifOrientationParsing() throws {
        func tiff(bigEndian: Bool, type: UInt16, value: UInt32) -> [UInt8] {
            func u16(_ v: UInt16) -> [UInt8] {
                bigEndian ? [UInt8(v >> 8), UInt8(v & 0xff)] : [UInt8(v & 0xff), UInt8(v >> 8)]
            }
            func u32(_ v: UInt32) -> [UInt8] {
                let b = [UInt8(v >> 24), UInt8((v >> 16) & 0xff), UInt8((v >> 8) & 0xff), UInt8(v & 0xff)]
                return bigEndian ? b : b.reversed()
            }
            let field = type == 3 ? u16(UInt16(value)) + [0, 0] : u32(value)
            return (bigEndian ? Array("MM".utf8) : Array("II".utf8)) + u16(42) + u32(8) + u16(1)
                + u16(0x0112) + u16(type) + u32(1) + field + u32(0)
        }
        for big in [false, true] {
            XCTAssertEqual(ExifOrientation.read(tiff(bigEndian: big, type: 3, value: 6)), 6)
            XCTAssertEqual(ExifOrientation.read(tiff(bigEndian: big, type: 4, value: 8)), 8)
            XCTAssertEqual(ExifOrientation.read(tiff(bigEndian: big, type: 3, value: 9)), 1)
            XCTAssertEqual(ExifOrientation.read(Array(tiff(bigEndian: big, type: 3, value: 6).prefix(19))), 1)
        }
        XCTAssertEqual(ExifOrientation.read([]), 1)
        // Orientation 6 is Pillow's ROTATE_270 (90° clockwise): a 3×2 image becomes 2×3.
        let image = try RGBImage(width: 3, height: 2, pixels: (0..<6).flatMap { [UInt8($0), 0, 0] })
        let turned = ExifOrientation.apply(6, to: image)
        XCTAssertEqual([turned.width, turned.height], [2, 3])
        XCTAssertEqual(stride(from: 0, to: 18, by: 3).map { turned.pixels[$0] }, [3, 0, 4, 1, 5, 2])
    }

    private func crc32(_ bytes: [UInt8]) -> UInt32 {
        var crc: UInt32 = 0xffff_ffff
        for b in bytes {
            crc ^= UInt32(b)
            for _ in 0..<8 { crc = crc & 1 != 0 ? 0xedb8_8320 ^ (crc >> 1) : crc >> 1 }
        }
        return ~crc
    }
}
