// libFuzzer target: PackReader's checks at open (through the in-memory initializer, which shares them with
// init(path:)) and every sample, on the input as given and resealed (every CRC recomputed, so that the
// structural checks the checksums guard are reached too).
import Foundation
import LoRANASFuzzDriver
@testable import LoRANAS

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzPack(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    var bytes = Array(UnsafeBufferPointer(start: data, count: size))
    readEverySample(bytes)
    PackSeal.reseal(&bytes)
    readEverySample(bytes)
    return 0
}

private func readEverySample(_ bytes: [UInt8]) {
    guard let reader = try? bytes.withUnsafeBytes({ try PackReader(bytes: $0, name: "fuzz.pack") }) else { return }
    guard reader.count >= 1, reader.metadata.sampleCount == reader.count else {
        fatalError("opened a pack of \(reader.count) samples, metadata says \(reader.metadata.sampleCount)")
    }
    for i in 0..<reader.count {
        guard let sample = try? reader.sample(i) else { continue }
        guard sample.length == reader.length(i), sample.images.count == reader.imageCount(i),
              sample.labels.count == sample.length
        else { fatalError("sample \(i) disagrees with its index entry") }
    }
}

@main
enum FuzzPackMain {
    static func main() {
        exit(loranas_fuzz_main(CommandLine.argc, CommandLine.unsafeArgv, fuzzPack))
    }
}
