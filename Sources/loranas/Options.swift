import ArgumentParser
import Foundation
import LoRANAS

/// --train / --val: the data of a training job.
struct TrainingDataOptions: ParsableArguments {
    @Option(help: "Training data: a Cauldron .jsonl (encoded with MODEL's processor) or a .pack.")
    var train: String

    @Option(help: "Validation data (.jsonl or .pack): the search's α set, the fine-tune's eval set.")
    var val: String

    @Option(help: "Cut .jsonl samples to this many tokens (records whose answers or images would be cut are skipped).")
    var maxLength: Int?

    func validate() throws {
        try DataFiles.check([("--train", train), ("--val", val)], maxLength: maxLength)
    }

    /// Both sets for the model in `directory`.
    func load(model directory: String) throws -> (train: Dataset, val: Dataset) {
        let files = try DataFiles(model: directory, maxLength: maxLength)
        return (try files.load(train), try files.load(val))
    }
}

/// Settings every training run has (the Python API's names and defaults).
struct RunOptions: ParsableArguments {
    @Option(help: "Passes over the training data.") var epochs = 1
    @Option(help: "Samples per batch.") var batchSize = 4
    @Option(help: "Learning rate for A and B (AdamW).") var lr: Float = 1e-4
    @Option(help: "Seed of the batch order and the initialization.") var seed: UInt64 = 0
    @Option(help: "Engine threads (1...64; default: LORANAS_NUM_THREADS or all cores).") var threads: Int?
    @Option(help: "Save the run there and resume from it when it holds this run's checkpoint.")
    var checkpointDir: String?
    @Option(help: "Checkpoint every this many steps (and at each epoch end and on Ctrl-C).")
    var checkpointEvery = 50
    @Option(help: "Stop after this many steps in all (smoke runs).") var maxSteps: Int?
    @Flag(help: "Batch samples of similar lengths (less padding; still deterministic by seed).")
    var groupByLength = false

    func validate() throws {
        try inRange("--epochs", epochs, 1...(1 << 20))
        try inRange("--batch-size", batchSize, 1...(1 << 20))
        guard lr > 0 && lr.isFinite else { throw ValidationError("--lr must be a positive number, got \(lr)") }
        try inRange("--checkpoint-every", checkpointEvery, 1...Int.max)
        if let maxSteps { try inRange("--max-steps", maxSteps, 0...Int.max) }
        if let threads { try inRange("--threads", threads, 1...Engine.maxThreads) }
        if let checkpointDir, checkpointDir.isEmpty { throw ValidationError("--checkpoint-dir must not be empty") }
    }

    /// Copies the settings into a search's or fine-tune's options and sets the engine threads.
    func apply<O: RunSettings>(to o: inout O) throws {
        if let threads { try Engine.setThreads(threads) }
        o.epochs = epochs
        o.batchSize = batchSize
        o.lr = lr
        o.seed = seed
        o.checkpointDir = checkpointDir
        o.checkpointEvery = checkpointEvery
        o.maxSteps = maxSteps
        o.groupByLength = groupByLength
    }
}

/// --targets and --side: which linear modules get LoRA.
struct TargetOptions: ParsableArguments {
    @Option(help: "Target module types: all, mlp, qk, or a list such as q_proj,v_proj.") var targets = "all"
    @Option(help: "Which tower: both, vision or text.") var side = "both"

    func validate() throws {
        do { _ = try spec() } catch { throw ValidationError("\(error)") }
    }

    func spec() throws -> TargetSpec { try TargetSpec(parsing: targets, side: side) }
}

/// --json: the result on stdout.
/// How the frozen base is computed: float32 (exact against transformers) or bfloat16 (the CPU's bf16 matrix units).
struct ComputeOptions: ParsableArguments {
    @Option(help: """
        float32 (exact against transformers) or bfloat16 (the frozen base weights rounded to bf16 and run on AMX \
        or AVX512-BF16, sums in fp32; LoRA's parameters, α and the optimizer stay fp32).
        """)
    var dtype: WeightDType = .float32

    /// The model at `path`, its linear weights loaded as bfloat16 when asked.
    func load(_ path: String) throws -> MllamaModel {
        let m = try MllamaModel(path: path, dtype: dtype)
        if dtype == .bfloat16 { Job.note("loranas: " + m.bf16Summary) }
        return m
    }

    /// Switches `m` (its weights final) to bfloat16 when asked, saying on which kernel.
    func apply(to m: MllamaModel) throws {
        if dtype == .bfloat16 { Job.note("loranas: " + (try m.useBFloat16())) }
    }
}

extension WeightDType: ExpressibleByArgument {}

struct OutputOptions: ParsableArguments {
    @Flag(help: "Print the result as JSON on stdout.") var json = false
}

/// `value` within `range`, else a usage error naming the option.
func inRange(_ name: String, _ value: Int, _ range: ClosedRange<Int>) throws {
    guard range.contains(value) else {
        let upper = range.upperBound == Int.max ? "" : "\(range.upperBound)"
        throw ValidationError("\(name) must be in \(range.lowerBound)...\(upper), got \(value)")
    }
}
