import Foundation

/// Which rank each target module gets in a fine-tune.
public enum RankAssignment: Sendable, Equatable {
    /// The same rank on every module the targets select.
    case uniform(Int)
    /// An explicit rank per module (checkpoint module names), e.g. a search's result.
    case perModule([String: Int])
    /// Random ranks from `space`, adjusted to within ±2% of `parameters` LoRA parameters: the
    /// control that shows whether a search beats chance at the same budget.
    case random(parameters: Int, space: [Int], seed: UInt64)
}

public enum AdapterInit: String, Sendable { case warm, fresh }

/// Settings of a mixed-rank LoRA fine-tune (all have defaults).
public struct FinetuneOptions: Sendable {
    public var ranks = RankAssignment.uniform(8)
    public var targets = TargetSpec.all
    /// warm: start from the attached supernet's kept slices (needs a search on this model first);
    /// fresh: A Kaiming-uniform, B zero.
    public var initialization = AdapterInit.fresh
    /// lora_alpha (scaling lora_alpha / r per module). Default: the search's, else 2·(largest rank).
    public var loraAlpha: Float? = nil
    public var dropout: Float = 0
    public var epochs = 1
    public var batchSize = 4
    public var evalBatchSize = 8
    public var lr: Float = 1e-4
    public var weightDecay: Float = 0.01
    public var seed: UInt64 = 0
    public var groupByLength = false
    public var checkpointDir: String? = nil
    public var checkpointEvery = 50
    public var maxSteps: Int? = nil

    public init() {}

    func validate() throws {
        try validateAdapterRun()
        try Evaluation.checkBatchSize(evalBatchSize, "eval_batch_size")
        try require(dropout >= 0 && dropout < 1, "dropout must be in [0, 1), got \(dropout)")
    }

    var fingerprint: String {
        let types = targets.types.map(\.rawValue).sorted()
        return "finetune|\(ranks)|\(types)|\(targets.side)|\(initialization)|\(dropout)|\(adapterRunFingerprint)"
    }
}

extension FinetuneOptions: AdapterRunSettings {}

public struct FinetuneResult: Sendable {
    public var ranks: [(String, Int)]
    public var loraParameters: Int
    public var modelParameters: Int
    /// Evaluation on the validation set after each epoch.
    public var evaluations: [Evaluation]
    /// Evaluation before the first step.
    public var initialEvaluation: Evaluation
    public var epochTimes: [Double]
    public var trainLosses: [Float]
    public var steps: Int
    /// True when the run ended early because the progress callback asked it to stop.
    public var stopped: Bool

    public var json: JSON {
        func n(_ x: Double) -> JSON { .number(x) }
        return .object([
            ("ranks", .object(ranks.map { ($0.0, n(Double($0.1))) })),
            ("lora_parameters", n(Double(loraParameters))), ("model_parameters", n(Double(modelParameters))),
            ("lora_share", n(Double(loraParameters) / Double(max(1, modelParameters)))),
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
