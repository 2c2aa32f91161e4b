import Foundation

extension MllamaModel {
    /// Fine-tunes a mixed-rank LoRA on the model end to end (AdamW), evaluating the validation
    /// set after every epoch. The adapters stay attached (export them with `PEFTAdapter.save`).
    public func finetune(
        train: Dataset, validation: Dataset, options o: FinetuneOptions,
        progress: ProgressCallback? = nil
    ) throws -> FinetuneResult {
        try o.validate()
        let dataFingerprint = try checkRunData(train, validation, job: "fine-tuning")
        let run = try FinetuneRun(model: self, options: o)
        let fingerprint = o.fingerprint + "|" + dataFingerprint
        let initial = try evaluate(validation, batchSize: o.evalBatchSize)
        let order = try BatchOrder(seed: o.seed, dataset: train, settings: o)
        var state = try run.startingState(o, order: order, fingerprint: fingerprint)
        let loop = EpochLoop(order: order, settings: o)
        let stopped = try loop.run(
            &state, progress: progress, save: run.saver(o, fingerprint: fingerprint),
            step: { state, indices in
                (try run.step(train, indices, step: state.globalStep + 1), nil)
            },
            endEpoch: {
                Float(try run.evaluate(validation).loss)
            })
        for a in run.adapters { a.training = false }
        return FinetuneResult(
            ranks: run.adapters.map { ($0.module, $0.rank) },
            loraParameters: run.adapters.reduce(0) { $0 + $1.parameterCount },
            modelParameters: parameterCount, evaluations: run.evaluations,
            initialEvaluation: initial, epochTimes: state.epochTimes,
            trainLosses: state.trainLosses, steps: state.globalStep, stopped: stopped)
    }

    /// Copies the supernet's slice for the adapter's rank and folds the supernet's per-component
    /// scale into B, so the new adapter computes what the supernet's kept components computed.
    func warmStart(_ a: LoRAAdapter, from s: SupernetAdapter) {
        let range = s.slices.range(rank: a.rank, maxRank: s.maxRank)
        let sigma = s.componentScale
        let inF = s.inFeatures
        let outF = s.outFeatures
        for (k, j) in range.enumerated() {
            (a.a.value.ptr + k * inF).update(from: s.a.value.ptr + j * inF, count: inF)
            let f = sigma[j] / a.scaling
            for o in 0..<outF { a.b.value.ptr[o * a.rank + k] = s.b.value.ptr[o * s.maxRank + j] * f }
        }
    }
}

/// One fine-tune in progress: the LoRA adapters, their optimizer and the evaluations so far.
final class FinetuneRun: ResumableRun {
    static let kind = "finetune"
    let model: MllamaModel
    let options: FinetuneOptions
    let adapters: [LoRAAdapter]
    let parameters: [TrainableTensor]
    let optimizer: Adam
    var evaluations: [Evaluation] = []

    init(model: MllamaModel, options o: FinetuneOptions) throws {
        self.model = model
        options = o
        try require(o.dropout == 0 || !(try World.current().isDistributed),
                    "dropout with more than one rank is not supported: each rank would draw other masks than "
                        + "one process, and resuming on another number of ranks could not replay them")
        let ranks = try model.resolveRanks(o.ranks, targets: o.targets)
        let supernets = Dictionary(model.supernetAdapters.map { ($0.module, $0) }, uniquingKeysWith: { a, _ in a })
        if o.initialization == .warm { try Self.checkWarmStart(ranks, supernets) }
        let loraAlpha = o.loraAlpha ?? supernets.values.first?.loraAlpha ?? Float(2 * (ranks.map(\.1).max() ?? 1))
        model.setBaseTrainable(false)
        model.removeAdapters()  // the supernets stay alive in `supernets` until their slices are copied
        adapters = try model.attachLoRA(
            ranks: Dictionary(ranks, uniquingKeysWith: { a, _ in a }),
            loraAlpha: { _, _ in loraAlpha }, dropout: o.dropout, seed: o.seed)
        if o.initialization == .warm {
            for a in adapters {
                if let s = supernets[a.module] { model.warmStart(a, from: s) }
            }
        }
        parameters = adapters.flatMap(\.parameters)
        optimizer = Adam(parameters, AdamConfig(lr: o.lr, weightDecay: o.weightDecay))
    }

    private static func checkWarmStart(_ ranks: [(String, Int)], _ supernets: [String: SupernetAdapter]) throws {
        for (m, r) in ranks {
            guard let s = supernets[m] else {
                throw LoRANASError.invalidArgument(
                    "warm start needs a search on this model first: \(m) has no supernet")
            }
            guard s.space.contains(r) else {
                throw LoRANASError.invalidArgument(
                    "warm start: rank \(r) of \(m) is not in the searched space \(s.space)")
            }
        }
    }

    func step(_ data: Dataset, _ indices: [Int], step: Int) throws -> Float {
        for a in adapters { a.training = true }
        let loss = try model.trainingStep(data, indices, step: step, gradients: parameters)
        optimizer.step()
        return loss
    }

    func evaluate(_ validation: Dataset) throws -> Evaluation {
        for a in adapters { a.training = false }
        let e = try model.evaluate(validation, batchSize: options.evalBatchSize)
        evaluations.append(e)
        return e
    }

    // MARK: - run state

    func save(dir: String, state: LoopState, fingerprint: String) throws {
        var tensors = parameters.map { ($0.name, $0.value) } + optimizer.state(prefix: "opt.")
        tensors.append(("train_losses", Tensor(state.trainLosses, shape: [state.trainLosses.count])))
        let rngState = JSON.array(adapters.map { .string(String($0.rng.state)) })
        try RunState.save(
            dir: dir, tensors: tensors,
            state: .object([
                ("kind", .string(Self.kind)), ("fingerprint", .string(fingerprint)), ("loop", state.json),
                ("opt_steps", .number(Double(optimizer.steps))), ("dropout_rng", rngState),
                ("evaluations", .array(evaluations.map(\.json))),
            ]))
    }

    func restore(_ saved: RunState.Saved) throws {
        for t in parameters { try saved.restore(t.name, into: t.value) }
        try optimizer.restore(prefix: "opt.", from: saved, steps: try saved.count("opt_steps"))
        let rng = saved.state["dropout_rng"]?.array ?? []
        guard rng.count == adapters.count else {
            throw LoRANASError.format("run state: dropout_rng has the wrong length")
        }
        for (a, s) in zip(adapters, rng) {
            guard let v = s.string.flatMap({ UInt64($0) }) else {
                throw LoRANASError.format("run state: a dropout_rng entry is not a 64-bit state")
            }
            a.rng.state = v
        }
        evaluations = try (saved.state["evaluations"]?.array ?? []).map { try Evaluation(json: $0) }
        guard evaluations.count == saved.loop.epoch else {
            throw LoRANASError.format("run state: \(evaluations.count) evaluations for \(saved.loop.epoch) epochs")
        }
    }
}
