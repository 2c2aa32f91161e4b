import Foundation

extension MllamaModel {
    /// LangVision-LoRA-NAS: trains a LoRA supernet on the target modules with the bilevel scheme
    /// (A, B on train batches with α frozen; α on validation batches with A, B frozen; separate
    /// optimizers), then derives each module's rank as argmax α (under a budget: the most probable
    /// assignment within it, see `RankDerivation`). The supernet stays attached, so a
    /// warm-started fine-tune can take over its slices.
    public func search(
        train: Dataset, validation: Dataset, options o: SearchOptions,
        progress: ProgressCallback? = nil
    ) throws -> SearchResult {
        try o.validate()
        let dataFingerprint = try checkRunData(train, validation, job: "search")
        let run = try SearchRun(model: self, options: o)
        let fingerprint = o.fingerprint + "|" + dataFingerprint + "|\(run.supernets.count)"
        let order = try BatchOrder(seed: o.seed, dataset: train, settings: o)
        var state = try run.startingState(o, order: order, fingerprint: fingerprint)
        let valOrder = try BatchOrder(seed: o.seed, dataset: validation, settings: o)
        let loop = EpochLoop(order: order, settings: o)
        let stopped = try loop.run(
            &state, progress: progress, save: run.saver(o, fingerprint: fingerprint),
            step: { state, indices in
                let losses = try run.step(
                    train: (train, indices),
                    validation: (validation, valOrder.batch(cursor: state.valCursor, label: "val")),
                    step: state.globalStep + 1)
                state.valCursor += 1
                return losses
            }, endEpoch: { run.validationLosses.last })
        return run.result(state: state, stopped: stopped)
    }
}

/// One search in progress: the supernets on the target modules, the two optimizers (one owns A
/// and B, the other α), the α history and the losses.
final class SearchRun: ResumableRun {
    static let kind = "search"
    let model: MllamaModel
    let options: SearchOptions
    let targets: [LinearLayer]
    let supernets: [SupernetAdapter]
    /// A and B of every supernet: the weight step's parameters.
    let weights: [TrainableTensor]
    /// α of every supernet: the architecture step's parameters.
    let arch: [TrainableTensor]
    let weightOptimizer: Adam
    let archOptimizer: Adam
    let uniformMaxParameters: Int
    let budget: Int?
    /// α of every module after every step, concatenated in module order.
    var history: [[Float]] = []
    var validationLosses: [Float] = []

    init(model: MllamaModel, options o: SearchOptions) throws {
        self.model = model
        options = o
        model.setBaseTrainable(false)
        model.removeAdapters()
        targets = model.linears(matching: o.targets)
        try require(!targets.isEmpty, "no module matches the targets")
        let sizes = Size.sum(targets.map { Size.product([o.maxRank, $0.inFeatures + $0.outFeatures]) })
        // Value, gradient and two Adam moments per A/B element.
        try Memory.require(
            sizes.flatMap { Size.product([$0, 16]) },
            for: "a supernet of rank \(o.maxRank) on \(targets.count) modules")
        uniformMaxParameters = sizes ?? 0
        budget = try Self.resolveBudget(o, targets: targets, uniformMax: uniformMaxParameters)
        let rng = SplitMix64(seed: o.seed)
        supernets = targets.map { l in
            var g = rng.derived(l.name)
            let s = SupernetAdapter(
                module: l.name, inFeatures: l.inFeatures, outFeatures: l.outFeatures,
                space: o.space, loraAlpha: o.resolvedLoraAlpha, slices: o.slices, rng: &g)
            l.adapter = s
            return s
        }
        weights = supernets.flatMap { [$0.a, $0.b] }
        arch = supernets.map(\.logits)
        weightOptimizer = Adam(weights, AdamConfig(lr: o.lr, weightDecay: o.weightDecay))
        archOptimizer = Adam(
            arch,
            AdamConfig(
                lr: o.alphaLR, beta1: 0.5, beta2: 0.999,
                weightDecay: o.alphaWeightDecay, decoupled: false))
    }

    /// The budget as a parameter count, checked against what the space can reach.
    static func resolveBudget(_ o: SearchOptions, targets: [LinearLayer], uniformMax: Int) throws -> Int? {
        guard let b = o.budget else { return nil }
        let budget: Int
        switch b {
        case .parameters(let n): budget = n
        case .fraction(let f): budget = Int((f * Double(uniformMax)).rounded())
        }
        let minimum = targets.reduce(0) { $0 + (o.space.first ?? 1) * ($1.inFeatures + $1.outFeatures) }
        try require(
            budget >= minimum && budget <= uniformMax,
            "budget \(budget) is outside what the space can reach on these modules (\(minimum)...\(uniformMax))")
        return budget
    }

    /// One bilevel step: (1) A and B on a train batch, α frozen; (2) α on a validation batch,
    /// A and B frozen. Returns the train loss and the α step's loss (with the budget penalty).
    func step(train: GlobalBatch, validation: GlobalBatch, step: Int) throws -> (train: Float, other: Float?) {
        for s in supernets { s.train(weights: true, alpha: false) }
        let loss = try model.trainingStep(train.data, train.indices, step: step, gradients: weights)
        weightOptimizer.step()
        for s in supernets { s.train(weights: false, alpha: true) }
        var vloss = try model.trainingStep(validation.data, validation.indices, step: step, gradients: arch)
        if let budget { vloss += addBudgetPenalty(budget: budget) }
        archOptimizer.step()
        for s in supernets { s.train(weights: false, alpha: false) }
        history.append(arch.flatMap { $0.value.array })
        validationLosses.append(vloss)
        return (loss, vloss)
    }

    /// Adds ∂/∂α of λ·(E[P]/B − 1)² to the α gradients; returns the penalty.
    func addBudgetPenalty(budget: Int) -> Float {
        let parts = supernets.map { $0.expectedParameters() }
        let expected = parts.reduce(0) { $0 + $1.value }
        let b = Double(budget)
        let ratio = expected / b - 1
        let coef = 2 * Double(options.budgetWeight) * ratio / b
        for (s, p) in zip(supernets, parts) {
            for k in 0..<s.space.count { s.logits.grad.ptr[k] += Float(coef * p.dLogits[k]) }
        }
        return Float(Double(options.budgetWeight) * ratio * ratio)
    }

    // MARK: - run state

    func save(dir: String, state: LoopState, fingerprint: String) throws {
        let cols = arch.reduce(0) { $0 + $1.value.count }
        let h = Tensor(zeros: [history.count, cols])
        for (i, row) in history.enumerated() { (h.ptr + i * cols).update(from: row, count: cols) }
        let tensors =
            (weights + arch).map { ($0.name, $0.value) }
            + weightOptimizer.state(prefix: "opt_w.") + archOptimizer.state(prefix: "opt_a.")
            + [
                ("alpha_history", h), ("train_losses", Tensor(state.trainLosses, shape: [state.trainLosses.count])),
                ("validation_losses", Tensor(validationLosses, shape: [validationLosses.count])),
            ]
        try RunState.save(
            dir: dir, tensors: tensors,
            state: .object([
                ("kind", .string(Self.kind)), ("fingerprint", .string(fingerprint)), ("loop", state.json),
                ("opt_w_steps", .number(Double(weightOptimizer.steps))),
                ("opt_a_steps", .number(Double(archOptimizer.steps))),
            ]))
    }

    func restore(_ saved: RunState.Saved) throws {
        let steps = saved.loop.globalStep
        for t in weights + arch { try saved.restore(t.name, into: t.value) }
        try weightOptimizer.restore(prefix: "opt_w.", from: saved, steps: try saved.count("opt_w_steps"))
        try archOptimizer.restore(prefix: "opt_a.", from: saved, steps: try saved.count("opt_a_steps"))
        let cols = arch.reduce(0) { $0 + $1.value.count }
        let h = Tensor(zeros: [steps, cols])
        try saved.restore("alpha_history", into: h)
        history = (0..<steps).map { Array(h[row: $0].array) }
        validationLosses = try saved.floats("validation_losses", count: steps)
    }

    // MARK: - result

    func result(state: LoopState, stopped: Bool) -> SearchResult {
        let modules = supernets.map { s in
            RankDerivation.Module(costs: s.space.map { $0 * (s.inFeatures + s.outFeatures) }, scores: s.logSoftmax)
        }
        let derived = RankDerivation.derive(modules, budget: budget)
        let ranks = zip(supernets, derived.choices).map { ($0.module, $0.space[$1]) }
        var alphaHistory: [String: [[Float]]] = [:]
        var col = 0
        for s in supernets {
            alphaHistory[s.module] = history.map { Array($0[col..<(col + s.space.count)]) }
            col += s.space.count
        }
        return SearchResult(
            ranks: ranks, space: options.space, loraAlpha: options.resolvedLoraAlpha,
            finalWeights: Dictionary(uniqueKeysWithValues: supernets.map { ($0.module, $0.weights) }),
            alphaHistory: alphaHistory, loraParameters: derived.total,
            uniformMaxParameters: uniformMaxParameters, budgetParameters: budget,
            budgetMet: budget == nil ? nil : derived.withinBand, modelParameters: model.parameterCount,
            steps: state.globalStep, stopped: stopped, epochTimes: state.epochTimes,
            trainLosses: state.trainLosses, validationLosses: validationLosses)
    }
}
