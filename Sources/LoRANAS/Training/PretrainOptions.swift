import Foundation

/// Settings of full-parameter training (every base weight trained, no adapters): AdamW with a
/// linear warm-up and a cosine decay, and the gradient's global norm clipped.
public struct PretrainOptions: Sendable {
    public var epochs = 1
    public var batchSize = 8
    public var evalBatchSize = 8
    /// The peak learning rate, reached after `warmupSteps`.
    public var lr: Float = 1e-3
    public var warmupSteps = 100
    /// The learning rate at the last step, as a fraction of `lr` (cosine decay in between).
    public var minLRRatio: Float = 0.1
    /// AdamW's decay, applied to matrices and embeddings only (not to norms, biases or gates).
    public var weightDecay: Float = 0.01
    /// The largest global L2 norm of the gradient; larger gradients are scaled down to it.
    public var maxGradNorm: Float = 1
    public var seed: UInt64 = 0
    public var groupByLength = false
    public var checkpointDir: String? = nil
    public var checkpointEvery = 200
    public var maxSteps: Int? = nil

    public init() {}

    func validate() throws {
        try validateRun()
        try Evaluation.checkBatchSize(evalBatchSize, "eval_batch_size")
        try require(warmupSteps >= 0, "warmup_steps must be non-negative, got \(warmupSteps)")
        try require(minLRRatio >= 0 && minLRRatio <= 1, "min_lr_ratio must be in [0, 1], got \(minLRRatio)")
        try require(maxGradNorm > 0 && maxGradNorm.isFinite, "max_grad_norm must be positive, got \(maxGradNorm)")
    }

    var fingerprint: String {
        "pretrain|\(warmupSteps)|\(minLRRatio)|\(maxGradNorm)|\(maxSteps ?? -1)|\(runFingerprint)"
    }

    /// The learning rate of optimizer step `step` (1-based) in a run of `totalSteps`.
    func learningRate(step: Int, totalSteps: Int) -> Float {
        if step <= warmupSteps { return lr * Float(step) / Float(max(1, warmupSteps)) }
        let span = max(1, totalSteps - warmupSteps)
        let progress = min(1, Double(step - warmupSteps) / Double(span))
        let cosine = Float(0.5 * (1 + cos(Double.pi * progress)))
        return lr * (minLRRatio + (1 - minLRRatio) * cosine)
    }
}

extension PretrainOptions: RunSettings {}

/// What a full-parameter training run reports.
public struct PretrainResult: Sendable {
    public var modelParameters: Int
    /// Evaluation on the validation set before the first step and after each epoch.
    public var initialEvaluation: Evaluation
    public var evaluations: [Evaluation]
    public var epochTimes: [Double]
    public var trainLosses: [Float]
    public var steps: Int
    /// True when the progress callback stopped the run early.
    public var stopped: Bool

    public var json: JSON {
        func n(_ x: Double) -> JSON { .number(x) }
        return .object([
            ("model_parameters", n(Double(modelParameters))),
            ("initial_evaluation", initialEvaluation.json),
            ("evaluations", .array(evaluations.map(\.json))),
            ("eval_perplexity", .array(evaluations.map { n($0.perplexity) })),
            ("epoch_times", .array(epochTimes.map(n))),
            ("train_losses", .array(trainLosses.map { n(Double($0)) })),
            ("steps", n(Double(steps))),
            ("stopped", .bool(stopped)),
        ])
    }
}
