import Foundation

/// What a progress callback returns: keep going or stop cleanly (state is checkpointed first
/// when a checkpoint directory is set).
public enum ProgressAction: Sendable { case more, stop }

/// One report to a progress callback.
public struct ProgressEvent: Sendable {
    public enum Kind: String, Sendable { case step, epoch }
    public var kind: Kind
    public var epoch: Int
    public var step: Int              // global step, 1-based once done
    public var stepsPerEpoch: Int
    public var trainLoss: Float
    public var validationLoss: Float? // the α step's loss (search) or the epoch's eval loss (fine-tune)
    public var json: JSON {
        .object([("kind", .string(kind.rawValue)), ("epoch", .number(Double(epoch))), ("step", .number(Double(step))),
                 ("steps_per_epoch", .number(Double(stepsPerEpoch))), ("train_loss", .number(Double(trainLoss))),
                 ("validation_loss", validationLoss.map { .number(Double($0)) } ?? .null)])
    }
}

public typealias ProgressCallback = (ProgressEvent) -> ProgressAction

/// The position of a run, saved in checkpoints: with the same seed and thread count, resuming
/// from it replays exactly the batches an uninterrupted run would have seen.
struct LoopState: Equatable {
    var epoch = 0, stepInEpoch = 0, globalStep = 0, valCursor = 0
    var epochTimes: [Double] = []
    var currentEpochTime = 0.0
    var trainLosses: [Float] = []

    var json: JSON {
        .object([("epoch", .number(Double(epoch))), ("step_in_epoch", .number(Double(stepInEpoch))),
                 ("global_step", .number(Double(globalStep))), ("val_cursor", .number(Double(valCursor))),
                 ("epoch_times", .array(epochTimes.map { .number($0) })), ("current_epoch_time", .number(currentEpochTime))])
    }

    init() {}
    init(json: JSON) throws {
        guard let e = json["epoch"]?.int, let s = json["step_in_epoch"]?.int, let g = json["global_step"]?.int,
              let v = json["val_cursor"]?.int else { throw LoRANASError.format("checkpoint state is incomplete") }
        epoch = e; stepInEpoch = s; globalStep = g; valCursor = v
        epochTimes = json["epoch_times"]?.array?.compactMap(\.double) ?? []
        currentEpochTime = json["current_epoch_time"]?.double ?? 0
    }
}

/// Batch order: a seeded permutation per epoch (and per pass over the validation set), so the
/// order is a pure function of (seed, epoch) and needs no saved generator state.
struct BatchOrder {
    let seed: UInt64, count: Int, batchSize: Int
    var batchesPerPass: Int { (count + batchSize - 1) / batchSize }

    func batch(pass: Int, index: Int, label: String) -> [Int] {
        var rng = SplitMix64(seed: seed).derived("\(label)-\(pass)")
        let p = rng.permutation(count)
        return Array(p[(index * batchSize)..<min(count, (index + 1) * batchSize)])
    }
}

/// The epoch and step loop that search and fine-tuning share: the seeded batch order, wall time
/// of training alone, progress reports, checkpoints every `checkpointEvery` steps, at each epoch
/// end and on a stop, and `maxSteps`.
struct EpochLoop {
    let order: BatchOrder
    let epochs: Int
    let maxSteps: Int?
    let checkpointEvery: Int

    /// `step(&state, batch indices)` trains one step and returns its train loss and the loss to
    /// report beside it; `endEpoch()` runs after an epoch's timing stops (evaluation goes there)
    /// and returns the epoch's validation loss; `save(state)` writes a checkpoint.
    func run(_ state: inout LoopState, progress: ProgressCallback?, save: (LoopState) throws -> Void,
             step: (inout LoopState, [Int]) throws -> (train: Float, other: Float?),
             endEpoch: () throws -> Float?) throws {
        epochs: while state.epoch < epochs {
            while state.stepInEpoch < order.batchesPerPass {
                if let m = maxSteps, state.globalStep >= m { try save(state); break epochs }
                let t0 = Date()
                let (loss, other) = try step(&state, order.batch(pass: state.epoch, index: state.stepInEpoch, label: "train"))
                state.trainLosses.append(loss)
                state.currentEpochTime += Date().timeIntervalSince(t0)
                state.stepInEpoch += 1; state.globalStep += 1
                let action = progress?(ProgressEvent(kind: .step, epoch: state.epoch, step: state.globalStep,
                                                     stepsPerEpoch: order.batchesPerPass, trainLoss: loss, validationLoss: other)) ?? .more
                if action == .stop { try save(state); break epochs }
                if state.globalStep % checkpointEvery == 0 { try save(state) }
            }
            state.epochTimes.append(state.currentEpochTime)
            state.currentEpochTime = 0
            let validation = try endEpoch()
            state.epoch += 1; state.stepInEpoch = 0
            try save(state)
            if progress?(ProgressEvent(kind: .epoch, epoch: state.epoch - 1, step: state.globalStep, stepsPerEpoch: order.batchesPerPass,
                                       trainLoss: state.trainLosses.last ?? .nan, validationLoss: validation)) == .stop { break }
        }
    }
}

/// Checkpoint files: `state.safetensors` in the run's directory, holding named tensors and a
/// JSON "state" entry in the metadata; written to a temporary file and renamed.
enum RunCheckpoint {
    static func path(_ dir: String) -> String { dir + "/state.safetensors" }

    static func save(dir: String, tensors: [(String, Tensor)], state: JSON) throws {
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        try SafeTensorsWriter.write(tensors.map { ($0.0, .f32($0.1)) }, metadata: ["loranas_state": state.serialized], to: path(dir))
    }

    /// The saved file and its state, or nil when the directory holds no checkpoint.
    static func load(dir: String) throws -> (SafeTensorsFile, JSON)? {
        guard FileManager.default.fileExists(atPath: path(dir)) else { return nil }
        let f = try SafeTensorsFile(path: path(dir))
        guard let s = f.metadata["loranas_state"] else { throw LoRANASError.format("\(path(dir)) has no loranas_state") }
        return (f, try JSON.parse(s))
    }
}

/// Token-weighted evaluation over a dataset: perplexity exp(Σ NLL / Σ tokens), and the paper's
/// mean of per-batch mean losses (a different number when batches hold different token counts).
public struct Evaluation: Sendable, Equatable {
    public var loss: Double            // token-weighted mean NLL
    public var perplexity: Double
    public var meanBatchLoss: Double   // the paper's figure: mean over batches of the batch mean
    public var tokens: Int

    public var json: JSON {
        .object([("loss", .number(loss)), ("perplexity", .number(perplexity)),
                 ("mean_batch_loss", .number(meanBatchLoss)), ("mean_batch_perplexity", .number(exp(meanBatchLoss))),
                 ("tokens", .number(Double(tokens)))])
    }
}

extension MllamaModel {
    /// Evaluates `data` in order, `batchSize` samples at a time.
    public func evaluate(_ data: Dataset, batchSize: Int) throws -> Evaluation {
        try require(batchSize > 0, "batch size must be positive")
        try require(data.count > 0, "cannot evaluate an empty dataset")
        for a in loraAdapters { a.training = false }
        var nll = 0.0, tokens = 0, batchLosses: [Double] = []
        var i = 0
        while i < data.count {
            let idx = Array(i..<min(data.count, i + batchSize))
            let pass = try forward(data.batch(idx))
            if pass.targetCount > 0 {
                guard let l = pass.loss, l.isFinite else { throw LoRANASError.numeric("evaluation loss is not finite") }
                nll += Double(l) * Double(pass.targetCount); tokens += pass.targetCount
                batchLosses.append(Double(l))
            }
            i += batchSize
        }
        try require(tokens > 0, "no sample in the dataset has a target token")
        let loss = nll / Double(tokens)
        return Evaluation(loss: loss, perplexity: exp(loss), meanBatchLoss: batchLosses.reduce(0, +) / Double(batchLosses.count), tokens: tokens)
    }

    /// Forward and backward on one batch; the loss and every gradient must be finite.
    func trainingStep(_ batch: MllamaBatch, step: Int, gradients: [TrainableTensor], extraLoss: Float = 0) throws -> Float {
        let pass = try forward(batch, keepForBackward: true)
        guard let loss = pass.loss, loss.isFinite else {
            throw LoRANASError.numeric("step \(step): loss is \(pass.loss.map { "\($0)" } ?? "missing") (a batch with no target tokens, or a diverged run)")
        }
        try backward(pass)
        if let bad = gradients.first(where: { !$0.grad.isFinite }) {
            throw LoRANASError.numeric("step \(step): gradient of \(bad.name) is not finite")
        }
        return loss + extraLoss
    }
}
