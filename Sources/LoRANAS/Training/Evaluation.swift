import Foundation

/// Token-weighted evaluation over a dataset: perplexity exp(Σ NLL / Σ tokens), and the paper's
/// mean of per-batch mean losses (a different number when batches hold different token counts).
public struct Evaluation: Sendable, Equatable {
    /// Token-weighted mean NLL.
    public var loss: Double
    public var perplexity: Double
    /// The paper's figure: the mean over batches of the batch mean.
    public var meanBatchLoss: Double
    public var tokens: Int

    /// The largest evaluation batch: a batch's logits alone take B·S·vocab floats.
    public static let maxBatchSize = 1 << 20

    /// Refuses an evaluation batch size outside 1...maxBatchSize, naming the setting.
    static func checkBatchSize(_ n: Int, _ name: String) throws {
        try require(n > 0 && n <= maxBatchSize, "\(name) must be in 1...\(maxBatchSize), got \(n)")
    }

    public var json: JSON {
        .object([
            ("loss", .number(loss)), ("perplexity", .number(perplexity)),
            ("mean_batch_loss", .number(meanBatchLoss)), ("mean_batch_perplexity", .number(exp(meanBatchLoss))),
            ("tokens", .number(Double(tokens))),
        ])
    }

    init(loss: Double, perplexity: Double, meanBatchLoss: Double, tokens: Int) {
        self.loss = loss
        self.perplexity = perplexity
        self.meanBatchLoss = meanBatchLoss
        self.tokens = tokens
    }

    /// Reads the form `json` writes.
    init(json: JSON) throws {
        guard let l = json["loss"]?.double, let p = json["perplexity"]?.double,
            let m = json["mean_batch_loss"]?.double, let t = json["tokens"]?.int, t >= 0
        else {
            throw LoRANASError.format("run state: an evaluation is incomplete")
        }
        self.init(loss: l, perplexity: p, meanBatchLoss: m, tokens: t)
    }
}

extension MllamaModel {
    /// Evaluates `data` in order, `batchSize` samples at a time.
    public func evaluate(_ data: Dataset, batchSize: Int) throws -> Evaluation {
        try Evaluation.checkBatchSize(batchSize, "batch size")
        try require(data.count > 0, "cannot evaluate an empty dataset")
        try require(data.config == config, "the dataset was made for another model (its config.json differs)")
        for a in loraAdapters { a.training = false }
        var nll = 0.0
        var tokens = 0
        var batchLosses: [Double] = []
        for start in stride(from: 0, to: data.count, by: batchSize) {
            let pass = try forward(try data.batch(Array(start..<min(data.count, start + batchSize))))
            guard pass.targetCount > 0 else { continue }
            guard let l = pass.loss, l.isFinite else { throw LoRANASError.numeric("evaluation loss is not finite") }
            nll += Double(l) * Double(pass.targetCount)
            tokens += pass.targetCount
            batchLosses.append(Double(l))
        }
        try require(tokens > 0, "no sample in the dataset has a target token")
        let loss = nll / Double(tokens)
        let meanBatch = batchLosses.reduce(0, +) / Double(batchLosses.count)
        return Evaluation(loss: loss, perplexity: exp(loss), meanBatchLoss: meanBatch, tokens: tokens)
    }

    /// Forward and backward on one batch; the batch must have a target and the loss and every
    /// gradient must be finite (else nothing is applied: the caller's optimizer never runs).
    func trainingStep(_ batch: MllamaBatch, step: Int, gradients: [TrainableTensor]) throws -> Float {
        let pass = try forward(batch, keepForBackward: true)
        guard pass.targetCount > 0 else {
            throw LoRANASError.invalidArgument("step \(step): the batch has no target tokens (every label is -100)")
        }
        guard let loss = pass.loss, loss.isFinite else {
            throw LoRANASError.numeric(
                "step \(step): loss is \(pass.loss.map { "\($0)" } ?? "missing") (a diverged run)")
        }
        try backward(pass)
        if let bad = gradients.first(where: { !$0.grad.isFinite }) {
            throw LoRANASError.numeric("step \(step): gradient of \(bad.name) is not finite")
        }
        return loss
    }
}
