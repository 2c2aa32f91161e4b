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
    public var checkpointDir: String? = nil
    public var checkpointEvery = 50
    public var maxSteps: Int? = nil

    public init() {}

    var fingerprint: String {
        "finetune|\(ranks)|\(targets.types.map(\.rawValue).sorted())|\(targets.side)|\(initialization)|\(String(describing: loraAlpha))|\(dropout)|\(epochs)|\(batchSize)|\(lr)|\(weightDecay)|\(seed)"
    }
}

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

    public var json: JSON {
        func n(_ x: Double) -> JSON { .number(x) }
        return .object([
            ("ranks", .object(ranks.map { ($0.0, n(Double($0.1))) })),
            ("lora_parameters", n(Double(loraParameters))), ("model_parameters", n(Double(modelParameters))),
            ("lora_share", n(Double(loraParameters) / Double(modelParameters))),
            ("initial_evaluation", initialEvaluation.json),
            ("evaluations", .array(evaluations.map(\.json))),
            ("eval_perplexity", .array(evaluations.map { n($0.perplexity) })),
            ("epoch_times", .array(epochTimes.map(n))),
            ("train_losses", .array(trainLosses.map { n(Double($0)) })),
            ("steps", n(Double(steps))),
        ])
    }
}

extension MllamaModel {
    /// Resolves a rank assignment to (module, rank) in model order.
    public func resolveRanks(_ a: RankAssignment, targets: TargetSpec) throws -> [(String, Int)] {
        switch a {
        case .uniform(let r):
            try require(r > 0, "rank must be positive, got \(r)")
            let ls = linears(matching: targets)
            try require(!ls.isEmpty, "no module matches the targets")
            return ls.map { ($0.name, r) }
        case .perModule(let m):
            try require(!m.isEmpty, "no ranks given")
            let order = targetableLinears.map(\.name)
            for k in m.keys where !order.contains(k) { throw LoRANASError.notFound("no targetable linear module \(k)") }
            for (k, r) in m where r <= 0 { throw LoRANASError.invalidArgument("rank of \(k) must be positive, got \(r)") }
            return order.compactMap { n in m[n].map { (n, $0) } }
        case .random(let target, let space, let seed):
            let ls = linears(matching: targets)
            try require(!ls.isEmpty && !space.isEmpty && space == space.sorted(), "random ranks need targets and a sorted space")
            var rng = SplitMix64(seed: seed)
            var k = ls.map { _ in Int(rng.next() % UInt64(space.count)) }
            func total() -> Int { zip(ls, k).reduce(0) { $0 + space[$1.1] * ($1.0.inFeatures + $1.0.outFeatures) } }
            let lo = Double(target) * 0.98, hi = Double(target) * 1.02
            var guardSteps = 0
            while (Double(total()) > hi || Double(total()) < lo) && guardSteps < 100_000 {
                let down = Double(total()) > hi
                let movable = k.indices.filter { down ? k[$0] > 0 : k[$0] < space.count - 1 }
                guard !movable.isEmpty else {
                    throw LoRANASError.invalidArgument("no rank assignment from \(space) reaches \(target) parameters on these modules")
                }
                let i = movable[Int(rng.next() % UInt64(movable.count))]
                k[i] += down ? -1 : 1
                guardSteps += 1
            }
            return zip(ls, k).map { ($0.name, space[$1]) }
        }
    }

    /// Fine-tunes a mixed-rank LoRA on the model end to end (AdamW), evaluating the validation
    /// set after every epoch. The adapters stay attached (export them with `PEFTAdapter.save`).
    public func finetune(train: Dataset, validation: Dataset, options o: FinetuneOptions,
                         progress: ProgressCallback? = nil) throws -> FinetuneResult {
        try require(o.epochs > 0 && o.batchSize > 0 && o.evalBatchSize > 0 && o.lr > 0, "epochs, batch sizes and lr must be positive")
        try require(o.dropout >= 0 && o.dropout < 1, "dropout must be in [0, 1)")
        try require(o.loraAlpha.map { $0 > 0 && $0.isFinite } ?? true, "lora_alpha must be positive")
        try require((o.maxSteps ?? 0) >= 0 && o.checkpointEvery > 0, "max_steps must be non-negative and checkpoint_every positive")
        try require(train.count > 0 && validation.count > 0, "fine-tuning needs non-empty train and validation sets")
        try require(train.config == config && validation.config == config, "datasets were made for another model")
        let ranks = try resolveRanks(o.ranks, targets: o.targets)
        let supernets = Dictionary(uniqueKeysWithValues: supernetAdapters.map { ($0.module, $0) })
        if o.initialization == .warm {
            for (m, r) in ranks {
                guard let s = supernets[m] else { throw LoRANASError.invalidArgument("warm start needs a search on this model first: \(m) has no supernet") }
                guard s.space.contains(r) else { throw LoRANASError.invalidArgument("warm start: rank \(r) of \(m) is not in the searched space \(s.space)") }
            }
        }
        let alpha = o.loraAlpha ?? supernets.values.first?.alpha ?? Float(2 * ranks.map(\.1).max()!)
        setBaseTrainable(false)
        // Keep the supernets until their slices are copied.
        let old = supernets
        removeAdapters()
        let adapters = try attachLoRA(ranks: Dictionary(uniqueKeysWithValues: ranks), alpha: { _, _ in alpha }, dropout: o.dropout, seed: o.seed)
        if o.initialization == .warm {
            for a in adapters { warmStart(a, from: old[a.module]!) }
        }
        let params = adapters.flatMap(\.parameters)
        let opt = Adam(params, AdamConfig(lr: o.lr, weightDecay: o.weightDecay))
        var state = LoopState()
        var evaluations: [Evaluation] = []
        let fingerprint = o.fingerprint + "|\(train.count)|\(validation.count)|\(parameterCount)"
        func save(_ state: LoopState) throws {
            guard let dir = o.checkpointDir else { return }
            var tensors = params.map { ($0.name, $0.value) } + opt.state(prefix: "opt.")
            tensors.append(("train_losses", Tensor(state.trainLosses, shape: [state.trainLosses.count])))
            let rngState = JSON.array(adapters.map { .string(String($0.rng.state)) })
            try RunCheckpoint.save(dir: dir, tensors: tensors, state: .object([
                ("kind", .string("finetune")), ("fingerprint", .string(fingerprint)), ("loop", state.json),
                ("opt_steps", .number(Double(opt.steps))), ("dropout_rng", rngState),
                ("evaluations", .array(evaluations.map(\.json)))]))
        }
        let initial = try evaluate(validation, batchSize: o.evalBatchSize)
        if let dir = o.checkpointDir, let (file, saved) = try RunCheckpoint.load(dir: dir) {
            guard saved["kind"]?.string == "finetune", saved["fingerprint"]?.string == fingerprint else {
                throw LoRANASError.invalidArgument("\(dir) holds a checkpoint of a different run; use another checkpoint_dir or the same options and data")
            }
            state = try LoopState(json: saved["loop"]!)
            for t in params { t.value.copy(from: try file.tensor(t.name)) }
            try opt.restore(prefix: "opt.", from: file, steps: saved["opt_steps"]?.int ?? 0)
            state.trainLosses = try file.tensor("train_losses").array
            for (a, s) in zip(adapters, saved["dropout_rng"]?.array ?? []) { if let v = s.string.flatMap(UInt64.init) { a.rng.state = v } }
            evaluations = (saved["evaluations"]?.array ?? []).compactMap { j in
                guard let l = j["loss"]?.double, let p = j["perplexity"]?.double, let m = j["mean_batch_loss"]?.double, let t = j["tokens"]?.int else { return nil }
                return Evaluation(loss: l, perplexity: p, meanBatchLoss: m, tokens: t)
            }
        }
        let order = BatchOrder(seed: o.seed, count: train.count, batchSize: o.batchSize)
        let loop = EpochLoop(order: order, epochs: o.epochs, maxSteps: o.maxSteps, checkpointEvery: o.checkpointEvery)
        try loop.run(&state, progress: progress, save: save, step: { state, indices in
            for a in adapters { a.training = true }
            let loss = try trainingStep(train.batch(indices), step: state.globalStep + 1, gradients: params)
            opt.step()
            return (loss, nil)
        }, endEpoch: {
            for a in adapters { a.training = false }
            evaluations.append(try evaluate(validation, batchSize: o.evalBatchSize))
            return Float(evaluations.last!.loss)
        })
        for a in adapters { a.training = false }
        let loraParams = adapters.reduce(0) { $0 + $1.parameterCount }
        return FinetuneResult(ranks: adapters.map { ($0.module, $0.rank) }, loraParameters: loraParams, modelParameters: parameterCount,
                              evaluations: evaluations, initialEvaluation: initial, epochTimes: state.epochTimes,
                              trainLosses: state.trainLosses, steps: state.globalStep)
    }

    /// Copies the supernet's slice for the adapter's rank and folds the supernet's per-component
    /// scale into B, so the new adapter computes what the supernet's kept components computed.
    func warmStart(_ a: LoRAAdapter, from s: SupernetAdapter) {
        let range = s.slices.range(rank: a.rank, maxRank: s.maxRank)
        let sigma = s.componentScale, inF = s.inFeatures, outF = s.outFeatures
        for (k, j) in range.enumerated() {
            (a.a.value.ptr + k * inF).update(from: s.a.value.ptr + j * inF, count: inF)
            let f = sigma[j] / a.scaling
            for o in 0..<outF { a.b.value.ptr[o * a.rank + k] = s.b.value.ptr[o * s.maxRank + j] * f }
        }
    }
}
