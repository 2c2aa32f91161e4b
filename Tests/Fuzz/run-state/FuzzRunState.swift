// libFuzzer target: a run's state.safetensors as resuming reads it: RunCheckpoint.load (the file,
// then its "loranas_state" metadata as JSON) and LoopState(json:) on the "loop" entry.
import Foundation
import LoRANASFuzzDriver
@testable import LoRANAS

/// The scratch checkpoint directory, made once per process.
let stateDir: String = {
    let dir = NSTemporaryDirectory() + "loranas-fuzz-state-\(getpid())"
    try? FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    return dir
}()

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzRunState(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let dir = stateDir
    let contents = Data(UnsafeRawBufferPointer(start: data, count: size))
    let written = FileManager.default.createFile(atPath: RunCheckpoint.path(dir), contents: contents)
    guard written else { fatalError("cannot write state.safetensors in \(dir)") }
    guard let loaded = try? RunCheckpoint.load(dir: dir) else { return 0 }
    let (file, saved) = loaded
    // Search and Finetune resume with `LoopState(json: saved["loop"]!)`: a state without "loop"
    // traps there (reproducer Tests/Fuzz/crashes/run-state-1). The harness checks it so the
    // rest of the state keeps being fuzzed.
    guard let loop = saved["loop"] else { return 0 }
    _ = try? LoopState(json: loop)
    _ = saved["opt_steps"]?.int
    for name in ["train_losses", "validation_losses", "alpha_history"] { _ = try? file.tensor(name) }
    return 0
}

@main
enum FuzzRunStateMain {
    static func main() {
        exit(loranas_fuzz_main(CommandLine.argc, CommandLine.unsafeArgv, fuzzRunState))
    }
}
