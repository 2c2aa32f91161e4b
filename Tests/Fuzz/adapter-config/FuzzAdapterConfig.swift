// libFuzzer target: adapter_config.json as PEFTAdapter.load reads it, next to a fixed valid
// adapter_model.safetensors (one q_proj module of rank 2), so the rank / alpha patterns are applied.
import Foundation
import LoRANASFuzzDriver
@testable import LoRANAS

/// The scratch adapter directory, made once per process.
let adapterDir: String = {
    let dir = NSTemporaryDirectory() + "loranas-fuzz-adapter-\(getpid())"
    try? FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    let module = "base_model.model.model.language_model.layers.0.self_attn.q_proj"
    let a = Tensor(zeros: [2, 4])
    let b = Tensor(zeros: [4, 2])
    do {
        try SafeTensorsWriter.write(
            [(module + ".lora_A.weight", .f32(a)), (module + ".lora_B.weight", .f32(b))],
            to: dir + "/adapter_model.safetensors")
    } catch {
        fatalError("cannot write the fuzz adapter: \(error)")
    }
    return dir
}()

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzAdapterConfig(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let dir = adapterDir
    let contents = Data(UnsafeRawBufferPointer(start: data, count: size))
    let written = FileManager.default.createFile(atPath: dir + "/adapter_config.json", contents: contents)
    guard written else { fatalError("cannot write adapter_config.json in \(dir)") }
    _ = try? PEFTAdapter.load(dir)
    return 0
}

@main
enum FuzzAdapterConfigMain {
    static func main() {
        exit(loranas_fuzz_main(CommandLine.argc, CommandLine.unsafeArgv, fuzzAdapterConfig))
    }
}
