import Foundation

/// An optional LoRA parameter budget for the search.
public enum Budget: Sendable, Equatable {
    /// A count of LoRA parameters.
    case parameters(Int)
    /// A fraction of what uniform rank R (the largest choice) would cost.
    case fraction(Double)
}

/// Settings of a supernet search (all have defaults).
public struct SearchOptions: Sendable {
    public var targets = TargetSpec.all
    public var space = [4, 8, 16, 32, 64]
    public var slices = SliceMode.centered
    /// lora_alpha; the search scales by lora_alpha / R, the derived model by lora_alpha / r. Default 2·R.
    public var loraAlpha: Float? = nil
    public var budget: Budget? = nil
    /// λ of the penalty λ·(E[params] / budget − 1)² added to the α step's loss.
    public var budgetWeight: Float = 1
    public var epochs = 1
    public var batchSize = 4
    /// AdamW on A and B.
    public var lr: Float = 1e-4
    public var weightDecay: Float = 0.01
    /// Adam on α (β = (0.5, 0.999), L2 weight decay), as in DARTS.
    public var alphaLR: Float = 3e-3
    public var alphaWeightDecay: Float = 1e-3
    public var seed: UInt64 = 0
    public var checkpointDir: String? = nil
    /// Save every this many steps (and at each epoch end) when checkpointDir is set.
    public var checkpointEvery = 50
    /// Stop after this many steps in all (for smoke runs); nil runs every epoch.
    public var maxSteps: Int? = nil

    public init() {}

    var alpha: Float { loraAlpha ?? Float(2 * (space.last ?? 1)) }

    func validate() throws {
        try require(!space.isEmpty && space.allSatisfy { $0 > 0 } && space == space.sorted() && Set(space).count == space.count,
                    "search space must be distinct positive ranks in increasing order, got \(space)")
        try require(epochs > 0 && batchSize > 0, "epochs and batch_size must be positive")
        try require(lr > 0 && alphaLR > 0 && lr.isFinite && alphaLR.isFinite, "learning rates must be positive")
        try require(checkpointEvery > 0, "checkpoint_every must be positive")
        try require(loraAlpha.map { $0 > 0 && $0.isFinite } ?? true, "lora_alpha must be positive")
        try require((maxSteps ?? 0) >= 0, "max_steps must be non-negative")
        if case .fraction(let f)? = budget { try require(f > 0 && f <= 1, "budget fraction must be in (0, 1], got \(f)") }
        if case .parameters(let n)? = budget { try require(n > 0, "budget must be a positive parameter count") }
    }

    var fingerprint: String {
        "search|\(targets.types.map(\.rawValue).sorted())|\(targets.side)|\(space)|\(slices)|\(alpha)|\(String(describing: budget))|\(budgetWeight)|\(epochs)|\(batchSize)|\(lr)|\(weightDecay)|\(alphaLR)|\(alphaWeightDecay)|\(seed)"
    }
}

/// What a search found: a rank per module, the α history, counts and timings. Round-trips through JSON.
public struct SearchResult: Sendable, Equatable {
    /// (module, rank) in model order.
    public var ranks: [(String, Int)]
    public var space: [Int]
    public var loraAlpha: Float
    /// softmax(α) per module at the end, in `space` order.
    public var finalWeights: [String: [Float]]
    /// α per module after every step: history[module][step][choice].
    public var alphaHistory: [String: [[Float]]]
    public var loraParameters: Int
    /// Parameters uniform rank R would cost on the same modules.
    public var uniformMaxParameters: Int
    public var budgetParameters: Int?
    public var modelParameters: Int
    public var steps: Int
    public var epochTimes: [Double]
    public var trainLosses: [Float]
    public var validationLosses: [Float]

    public static func == (a: SearchResult, b: SearchResult) -> Bool { a.json == b.json }

    public var rankMap: [String: Int] { Dictionary(uniqueKeysWithValues: ranks) }

    public var json: JSON {
        func n(_ x: Double) -> JSON { .number(x) }
        return .object([
            ("ranks", .object(ranks.map { ($0.0, n(Double($0.1))) })),
            ("space", .array(space.map { n(Double($0)) })),
            ("lora_alpha", n(Double(loraAlpha))),
            ("final_weights", .object(ranks.map { m, _ in (m, .array(finalWeights[m]!.map { n(Double($0)) })) })),
            ("alpha_history", .object(ranks.map { m, _ in (m, .array(alphaHistory[m]!.map { .array($0.map { n(Double($0)) }) })) })),
            ("lora_parameters", n(Double(loraParameters))),
            ("uniform_max_parameters", n(Double(uniformMaxParameters))),
            ("budget_parameters", budgetParameters.map { n(Double($0)) } ?? .null),
            ("model_parameters", n(Double(modelParameters))),
            ("lora_share", n(Double(loraParameters) / Double(modelParameters))),
            ("steps", n(Double(steps))),
            ("epoch_times", .array(epochTimes.map(n))),
            ("train_losses", .array(trainLosses.map { n(Double($0)) })),
            ("validation_losses", .array(validationLosses.map { n(Double($0)) })),
        ])
    }

    public init(json: JSON) throws {
        func floats(_ j: JSON?) throws -> [Float] {
            guard let a = j?.array else { throw LoRANASError.format("search result: expected a list of numbers") }
            return try a.map { guard let d = $0.double else { throw LoRANASError.format("search result: not a number") }; return Float(d) }
        }
        guard let r = json["ranks"]?.object else { throw LoRANASError.format("search result has no ranks") }
        ranks = try r.map { k, v in guard let i = v.int else { throw LoRANASError.format("rank of \(k) is not an integer") }; return (k, i) }
        space = try floats(json["space"]).map { Int($0) }
        loraAlpha = Float(json["lora_alpha"]?.double ?? 0)
        finalWeights = try Dictionary(uniqueKeysWithValues: (json["final_weights"]?.object ?? []).map { ($0.0, try floats($0.1)) })
        alphaHistory = try Dictionary(uniqueKeysWithValues: (json["alpha_history"]?.object ?? []).map { k, v in
            (k, try (v.array ?? []).map { try floats($0) })
        })
        loraParameters = json["lora_parameters"]?.int ?? 0
        uniformMaxParameters = json["uniform_max_parameters"]?.int ?? 0
        budgetParameters = json["budget_parameters"]?.int
        modelParameters = json["model_parameters"]?.int ?? 0
        steps = json["steps"]?.int ?? 0
        epochTimes = (json["epoch_times"]?.array ?? []).compactMap(\.double)
        trainLosses = try floats(json["train_losses"])
        validationLosses = try floats(json["validation_losses"])
    }

    init(ranks: [(String, Int)], space: [Int], loraAlpha: Float, finalWeights: [String: [Float]], alphaHistory: [String: [[Float]]],
         loraParameters: Int, uniformMaxParameters: Int, budgetParameters: Int?, modelParameters: Int, steps: Int,
         epochTimes: [Double], trainLosses: [Float], validationLosses: [Float]) {
        self.ranks = ranks; self.space = space; self.loraAlpha = loraAlpha; self.finalWeights = finalWeights
        self.alphaHistory = alphaHistory; self.loraParameters = loraParameters; self.uniformMaxParameters = uniformMaxParameters
        self.budgetParameters = budgetParameters; self.modelParameters = modelParameters; self.steps = steps
        self.epochTimes = epochTimes; self.trainLosses = trainLosses; self.validationLosses = validationLosses
    }
}

extension MllamaModel {
    /// LangVision-LoRA-NAS: trains a LoRA supernet on the target modules with the bilevel scheme
    /// (A, B on train batches with α frozen; α on validation batches with A, B frozen; separate
    /// optimizers), then derives each module's rank as argmax α. The supernet stays attached, so a
    /// warm-started fine-tune can take over its slices.
    public func search(train: Dataset, validation: Dataset, options o: SearchOptions,
                       progress: ProgressCallback? = nil) throws -> SearchResult {
        try o.validate()
        try require(train.count > 0 && validation.count > 0, "search needs non-empty train and validation sets")
        try require(train.config == config && validation.config == config, "datasets were made for another model")
        setBaseTrainable(false)
        removeAdapters()
        let targets = linears(matching: o.targets)
        try require(!targets.isEmpty, "no module matches the targets")
        let rng = SplitMix64(seed: o.seed)
        let supernets = targets.map { l -> SupernetAdapter in
            var g = rng.derived(l.name)
            let s = SupernetAdapter(module: l.name, inFeatures: l.inFeatures, outFeatures: l.outFeatures, space: o.space,
                                    alpha: o.alpha, slices: o.slices, rng: &g)
            l.adapter = s
            return s
        }
        let weights = supernets.flatMap { [$0.a, $0.b] }, arch = supernets.map(\.logits)
        let wOpt = Adam(weights, AdamConfig(lr: o.lr, weightDecay: o.weightDecay))
        let aOpt = Adam(arch, AdamConfig(lr: o.alphaLR, beta1: 0.5, beta2: 0.999, weightDecay: o.alphaWeightDecay, decoupled: false))
        let uniformMax = targets.reduce(0) { $0 + o.space.last! * ($1.inFeatures + $1.outFeatures) }
        let budget: Int? = o.budget.map {
            switch $0 { case .parameters(let n): return n; case .fraction(let f): return Int((f * Double(uniformMax)).rounded()) }
        }
        if let budget {
            let minimum = targets.reduce(0) { $0 + o.space.first! * ($1.inFeatures + $1.outFeatures) }
            try require(budget >= minimum && budget <= uniformMax,
                        "budget \(budget) is outside what the space can reach on these modules (\(minimum)...\(uniformMax))")
        }

        var state = LoopState()
        var history: [[Float]] = [], valLosses: [Float] = []
        let fingerprint = o.fingerprint + "|\(train.count)|\(validation.count)|\(parameterCount)|\(targets.count)"
        func snapshot(_ state: LoopState) -> [(String, Tensor)] {
            let cols = arch.reduce(0) { $0 + $1.value.count }
            let h = Tensor(zeros: [history.count, cols])
            for (i, row) in history.enumerated() { for (j, v) in row.enumerated() { h.ptr[i * cols + j] = v } }
            return (weights + arch).map { ($0.name, $0.value) } + wOpt.state(prefix: "opt_w.") + aOpt.state(prefix: "opt_a.")
                + [("alpha_history", h), ("train_losses", Tensor(state.trainLosses, shape: [state.trainLosses.count])),
                   ("validation_losses", Tensor(valLosses, shape: [valLosses.count]))]
        }
        func save(_ state: LoopState) throws {
            guard let dir = o.checkpointDir else { return }
            try RunCheckpoint.save(dir: dir, tensors: snapshot(state), state: .object([
                ("kind", .string("search")), ("fingerprint", .string(fingerprint)), ("loop", state.json),
                ("opt_w_steps", .number(Double(wOpt.steps))), ("opt_a_steps", .number(Double(aOpt.steps)))]))
        }
        if let dir = o.checkpointDir, let (file, saved) = try RunCheckpoint.load(dir: dir) {
            guard saved["kind"]?.string == "search", saved["fingerprint"]?.string == fingerprint else {
                throw LoRANASError.invalidArgument("\(dir) holds a checkpoint of a different run; use another checkpoint_dir or the same options and data")
            }
            state = try LoopState(json: saved["loop"]!)
            for t in weights + arch { t.value.copy(from: try file.tensor(t.name)) }
            try wOpt.restore(prefix: "opt_w.", from: file, steps: saved["opt_w_steps"]?.int ?? 0)
            try aOpt.restore(prefix: "opt_a.", from: file, steps: saved["opt_a_steps"]?.int ?? 0)
            let h = try file.tensor("alpha_history")
            history = (0..<h.shape[0]).map { Array(h[row: $0].array) }
            state.trainLosses = try file.tensor("train_losses").array
            valLosses = try file.tensor("validation_losses").array
        }

        let trainOrder = BatchOrder(seed: o.seed, count: train.count, batchSize: o.batchSize)
        let valOrder = BatchOrder(seed: o.seed, count: validation.count, batchSize: o.batchSize)
        let loop = EpochLoop(order: trainOrder, epochs: o.epochs, maxSteps: o.maxSteps, checkpointEvery: o.checkpointEvery)
        try loop.run(&state, progress: progress, save: save, step: { state, indices in
            let step = state.globalStep + 1
            // (1) A and B on a train batch, α frozen.
            for s in supernets { s.trainWeights = true; s.trainAlpha = false }
            let loss = try trainingStep(train.batch(indices), step: step, gradients: weights)
            wOpt.step()
            // (2) α on a validation batch, A and B frozen.
            for s in supernets { s.trainWeights = false; s.trainAlpha = true }
            let vc = state.valCursor
            let vbatch = validation.batch(valOrder.batch(pass: vc / valOrder.batchesPerPass, index: vc % valOrder.batchesPerPass, label: "val"))
            var vloss = try trainingStep(vbatch, step: step, gradients: arch)
            if let budget { vloss += addBudgetPenalty(supernets, budget: budget, weight: o.budgetWeight) }
            aOpt.step()
            state.valCursor += 1
            history.append(arch.flatMap { $0.value.array })
            valLosses.append(vloss)
            return (loss, vloss)
        }, endEpoch: { valLosses.last })
        for s in supernets { s.trainWeights = false; s.trainAlpha = false }

        let ranks = deriveRanks(supernets, budget: budget)
        var alphaHistory: [String: [[Float]]] = [:]
        var col = 0
        for s in supernets {
            alphaHistory[s.module] = history.map { Array($0[col..<(col + s.space.count)]) }
            col += s.space.count
        }
        let loraParams = zip(targets, ranks).reduce(0) { $0 + $1.1.1 * ($1.0.inFeatures + $1.0.outFeatures) }
        return SearchResult(ranks: ranks, space: o.space, loraAlpha: o.alpha,
                            finalWeights: Dictionary(uniqueKeysWithValues: supernets.map { ($0.module, $0.weights) }),
                            alphaHistory: alphaHistory, loraParameters: loraParams, uniformMaxParameters: uniformMax,
                            budgetParameters: budget, modelParameters: parameterCount, steps: state.globalStep,
                            epochTimes: state.epochTimes, trainLosses: state.trainLosses, validationLosses: valLosses)
    }

    /// Adds ∂/∂α of λ·(E[P]/B − 1)² to the α gradients; returns the penalty.
    func addBudgetPenalty(_ supernets: [SupernetAdapter], budget: Int, weight: Float) -> Float {
        let parts = supernets.map { $0.expectedParameters() }
        let expected = parts.reduce(0) { $0 + $1.value }, b = Double(budget)
        let ratio = expected / b - 1
        let coef = 2 * Double(weight) * ratio / b
        for (s, p) in zip(supernets, parts) {
            for k in 0..<s.space.count { s.logits.grad.ptr[k] += Float(coef * p.dLogits[k]) }
        }
        return Float(Double(weight) * ratio * ratio)
    }

    /// argmax α per module. With a budget, the count is then brought within ±5% of it by moving
    /// one module at a time one rank step, choosing the move that gives up the least α per
    /// parameter (the penalty steers E[params], but argmax can still land outside the band).
    func deriveRanks(_ supernets: [SupernetAdapter], budget: Int?) -> [(String, Int)] {
        var choice = supernets.map { s in s.space.firstIndex(of: s.derivedRank)! }
        guard let budget else { return zip(supernets, choice).map { ($0.module, $0.space[$1]) } }
        func size(_ s: SupernetAdapter, _ k: Int) -> Int { s.space[k] * (s.inFeatures + s.outFeatures) }
        var total = zip(supernets, choice).reduce(0) { $0 + size($1.0, $1.1) }
        let lo = Double(budget) * 0.95, hi = Double(budget) * 1.05
        while Double(total) > hi || Double(total) < lo {
            let down = Double(total) > hi
            var best: (Int, Double)? = nil
            for (i, s) in supernets.enumerated() {
                let k = choice[i], next = down ? k - 1 : k + 1
                guard next >= 0 && next < s.space.count else { continue }
                let l = s.logits.value.array
                let cost = Double(l[k] - l[next]) / Double(abs(size(s, next) - size(s, k)))
                if best == nil || cost < best!.1 { best = (i, cost) }
            }
            guard let (i, _) = best else { break }
            total -= size(supernets[i], choice[i])
            choice[i] += down ? -1 : 1
            total += size(supernets[i], choice[i])
        }
        return zip(supernets, choice).map { ($0.module, $0.space[$1]) }
    }
}
