// libFuzzer target: a run's state.safetensors as resuming reads it: RunState.load (the file, its
// "loranas_state" metadata as JSON, the loop position), then the checked reads a resume makes
// (tensors restored into fixed shapes, float histories, counters).
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
    let written = FileManager.default.createFile(atPath: RunState.path(dir), contents: contents)
    guard written else { fatalError("cannot write state.safetensors in \(dir)") }
    guard let saved = try? RunState.load(dir: dir) else { return 0 }
    _ = try? saved.loop.check(epochs: 4, stepsPerEpoch: 8)
    _ = try? saved.count("opt_steps")
    let target = Tensor(zeros: [2, 4])
    for name in saved.file.names { _ = try? saved.restore(name, into: target) }
    for name in ["train_losses", "validation_losses"] { _ = try? saved.floats(name, count: saved.loop.globalStep) }
    _ = try? (saved.state["evaluations"]?.array ?? []).map { try Evaluation(json: $0) }
    return 0
}

@main
enum FuzzRunStateMain {
    static func main() {
        exit(loranas_fuzz_main(CommandLine.argc, CommandLine.unsafeArgv, fuzzRunState))
    }
}
