// libFuzzer target: the safetensors header parser (SafeTensorsFile) on in-memory bytes.
// Built by tools/fuzz.sh only; see Tests/Fuzz/README.md.
import Foundation
import LoRANASFuzzDriver
@testable import LoRANAS

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzSafeTensors(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let bytes = UnsafeRawBufferPointer(start: data, count: size)
    guard let file = try? SafeTensorsFile(bytes: bytes, name: "fuzz.safetensors") else { return 0 }
    // A validated header must make every accessor safe: read each tensor as a loader would.
    for info in file.tensors where info.count <= 1 << 16 {
        _ = try? file.tensor(info.name)
        _ = try? file.ints(info.name)
    }
    return 0
}

@main
enum FuzzSafeTensorsMain {
    static func main() {
        exit(loranas_fuzz_main(CommandLine.argc, CommandLine.unsafeArgv, fuzzSafeTensors))
    }
}
