// libFuzzer target: both image decoders (libpng and libjpeg-turbo behind the setjmp glue), both
// routes (PIL object, path), then the Pillow resample port and the Mllama processor on what decodes.
import Foundation
import LoRANASFuzzDriver
@testable import LoRANAS

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzImage(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let bytes = UnsafeRawBufferPointer(start: data, count: size)
    // A small pixel limit keeps allocations far below the fuzzer's RSS limit.
    let options = [
        ImageDecodeOptions(maxPixels: 1 << 18),
        ImageDecodeOptions(exifTranspose: true, alpha: .drop, maxPixels: 1 << 18),
    ]
    for option in options {
        guard let image = try? ImageDecoder.decode(bytes, options: option) else { continue }
        guard image.pixels.count == image.width * image.height * 3 else {
            fatalError("decoded \(image.width)×\(image.height) with \(image.pixels.count) samples")
        }
        let w = 1 + (size * 7) % 64
        let h = 1 + (size * 13) % 64
        guard let resized = try? PillowResample.resize(image, width: w, height: h),
            resized.pixels.count == w * h * 3
        else { fatalError("resize to \(w)×\(h) failed") }
        guard let processor = try? MllamaImageProcessor(settings: .init(tileSize: 8, maxImageTiles: 4)),
            let out = try? processor.process(image), out.pixelValues.count == 4 * 3 * 8 * 8
        else { fatalError("processing a decoded image failed") }
    }
    return 0
}

@main
enum FuzzImageMain {
    static func main() {
        exit(loranas_fuzz_main(CommandLine.argc, CommandLine.unsafeArgv, fuzzImage))
    }
}
