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
    /// Evaluates `data` in order, `batchSize` samples at a time; each batch is split across the world's ranks
    /// and their sums of NLL and tokens are added, so every rank gets the whole dataset's figures.
    public func evaluate(_ data: Dataset, batchSize: Int) throws -> Evaluation {
        try Evaluation.checkBatchSize(batchSize, "batch size")
        try require(data.count > 0, "cannot evaluate an empty dataset")
        try require(data.config == config, "the dataset was made for another model (its config.json differs)")
        let world = try World.current()
        for a in loraAdapters { a.training = false }
        var nll = 0.0
        var tokens = 0.0
        var batchLosses: [Double] = []
        for start in stride(from: 0, to: data.count, by: batchSize) {
            let mine = world.shard(Array(start..<min(data.count, start + batchSize)))
            var sums = try world.agree { () -> [Double] in
                guard !mine.isEmpty else { return [0, 0] }
                let pass = try forward(try data.batch(mine))
                guard pass.targetCount > 0 else { return [0, 0] }
                return [Double(pass.loss ?? .nan) * Double(pass.targetCount), Double(pass.targetCount)]
            }
            world.sum(&sums)
            guard sums[1] > 0 else { continue }
            guard sums[0].isFinite else { throw LoRANASError.numeric("evaluation loss is not finite") }
            nll += sums[0]
            tokens += sums[1]
            batchLosses.append(sums[0] / sums[1])
        }
        try require(tokens > 0, "no sample in the dataset has a target token")
        let loss = nll / tokens
        let meanBatch = batchLosses.reduce(0, +) / Double(batchLosses.count)
        return Evaluation(loss: loss, perplexity: exp(loss), meanBatchLoss: meanBatch, tokens: Int(tokens))
    }
}
