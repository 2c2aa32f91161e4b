import Foundation

extension MllamaModel {
    /// Trains every base weight (vision tower, projector, decoder, LM head) on `train` with AdamW, evaluating
    /// `validation` before the first step and after every epoch. The model must have no adapters.
    public func pretrain(
        train: Dataset, validation: Dataset, options o: PretrainOptions, progress: ProgressCallback? = nil
    ) throws -> PretrainResult {
        try o.validate()
        try require(loraAdapters.isEmpty && supernetAdapters.isEmpty,
                    "full-parameter training needs a model without adapters (clear them first)")
        try require(computeDType == .float32, "full-parameter training needs a float32 model (this one is bfloat16)")
        let fingerprint = o.fingerprint + "|" + (try checkRunData(train, validation, job: "full-parameter training"))
        let initial = try evaluate(validation, batchSize: o.evalBatchSize)
        let order = try BatchOrder(seed: o.seed, dataset: train, settings: o)
        let run = PretrainRun(model: self, options: o, totalSteps: totalSteps(o, order))
        defer { setBaseTrainable(false) }
        var state = try run.startingState(o, order: order, fingerprint: fingerprint)
        let stopped = try EpochLoop(order: order, settings: o).run(
            &state, progress: progress, save: run.saver(o, fingerprint: fingerprint),
            step: { state, indices in (try run.step(train, indices, step: state.globalStep + 1), nil) },
            endEpoch: { Float(try run.evaluate(validation).loss) })
        return PretrainResult(
            modelParameters: parameterCount, initialEvaluation: initial, evaluations: run.evaluations,
            epochTimes: state.epochTimes, trainLosses: state.trainLosses, steps: state.globalStep, stopped: stopped)
    }

    private func totalSteps(_ o: PretrainOptions, _ order: BatchOrder) -> Int {
        let all = o.epochs.multipliedReportingOverflow(by: order.batchesPerPass)
        let steps = all.overflow ? Int.max : all.partialValue
        return min(steps, o.maxSteps ?? Int.max)
    }
}

/// One full-parameter run in progress: the weights' AdamW (decayed and undecayed groups) and the evaluations.
final class PretrainRun: ResumableRun {
    static let kind = "pretrain"
    let model: MllamaModel
    let options: PretrainOptions
    let totalSteps: Int
    let parameters: [TrainableTensor]
    /// Matrices and embeddings (weight decay) and the rest: norms, biases, gates (none).
    let decayed: Adam, undecayed: Adam
    var evaluations: [Evaluation] = []

    init(model: MllamaModel, options o: PretrainOptions, totalSteps: Int) {
        self.model = model
        options = o
        self.totalSteps = totalSteps
        let grads = model.trainBase()
        parameters = model.params.entries.map {
            TrainableTensor(name: $0.name, value: model.params[$0.name], grad: grads[$0.name])
        }
        let isMatrix = Set(model.params.entries.filter { $0.shape.count >= 2 }.map(\.name))
        let decay = AdamConfig(lr: o.lr, weightDecay: o.weightDecay)
        decayed = Adam(parameters.filter { isMatrix.contains($0.name) }, decay)
        undecayed = Adam(parameters.filter { !isMatrix.contains($0.name) }, AdamConfig(lr: o.lr))
    }

    func step(_ data: Dataset, _ indices: [Int], step: Int) throws -> Float {
        let loss = try model.trainingStep(data, indices, step: step, gradients: parameters)
        clipGradients()
        let lr = options.learningRate(step: step, totalSteps: totalSteps)
        decayed.config.lr = lr
        undecayed.config.lr = lr
        decayed.step()
        undecayed.step()
        return loss
    }

    /// Scales the gradient down to `maxGradNorm` when its global L2 norm is larger (PyTorch's clip_grad_norm_).
    private func clipGradients() {
        guard let grads = model.grads else { return }
        let g = grads.storage
        var sum = 0.0
        for i in 0..<g.count { sum += Double(g.ptr[i]) * Double(g.ptr[i]) }
        let norm = sum.squareRoot(), limit = Double(options.maxGradNorm)
        guard norm > limit else { return }
        let scale = Float(limit / (norm + 1e-6))
        for i in 0..<g.count { g.ptr[i] *= scale }
    }

    func evaluate(_ validation: Dataset) throws -> Evaluation {
        let e = try model.evaluate(validation, batchSize: options.evalBatchSize)
        evaluations.append(e)
        return e
    }

    // MARK: - run state

    func save(dir: String, state: LoopState, fingerprint: String) throws {
        var tensors = parameters.map { ($0.name, $0.value) }
        tensors += decayed.state(prefix: "opt.") + undecayed.state(prefix: "opt.")
        tensors.append(("train_losses", Tensor(state.trainLosses, shape: [state.trainLosses.count])))
        try RunState.save(
            dir: dir, tensors: tensors,
            state: .object([
                ("kind", .string(Self.kind)), ("fingerprint", .string(fingerprint)), ("loop", state.json),
                ("opt_steps", .number(Double(decayed.steps))), ("evaluations", .array(evaluations.map(\.json))),
            ]))
    }

    func restore(_ saved: RunState.Saved) throws {
        for t in parameters { try saved.restore(t.name, into: t.value) }
        let steps = try saved.count("opt_steps")
        try decayed.restore(prefix: "opt.", from: saved, steps: steps)
        try undecayed.restore(prefix: "opt.", from: saved, steps: steps)
        evaluations = try (saved.state["evaluations"]?.array ?? []).map { try Evaluation(json: $0) }
        guard evaluations.count == saved.loop.epoch else {
            throw LoRANASError.format("run state: \(evaluations.count) evaluations for \(saved.loop.epoch) epochs")
        }
    }
}
