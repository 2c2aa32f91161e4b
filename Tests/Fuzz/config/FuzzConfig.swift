// libFuzzer target: config.json as MllamaConfig(contentsOf:) reads it: JSON.parse (duplicate keys
// allowed, as transformers' json.load does) then MllamaConfig(json:) and its validate().
import Foundation
import LoRANASFuzzDriver
@testable import LoRANAS

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzConfig(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let bytes = UnsafeRawBufferPointer(start: data, count: size)
    guard let json = try? JSON.parse(bytes, rejectDuplicateKeys: false) else { return 0 }
    _ = try? MllamaConfig(json: json)
    return 0
}

@main
enum FuzzConfigMain {
    static func main() {
        exit(loranas_fuzz_main(CommandLine.argc, CommandLine.unsafeArgv, fuzzConfig))
    }
}
