import ArgumentParser
import Foundation
import LoRANAS

/// Searched ranks against uniform and random ranks at the same budget, on a synthetic task.
struct Compare: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Search ranks, then fine-tune searched, uniform and random-rank LoRA at equal budget and compare "
            + "eval perplexity.",
        discussion: """
            Prints the paper's Table-1 columns for each adapter: LoRA parameters and their share of \
            the model, eval perplexity and seconds per epoch. With --train and --val (Cauldron .jsonl \
            or .pack) it runs on that data; without them it uses a synthetic image-conditioned \
            counting task (see Dataset.synthetic), so it runs on any Mllama checkpoint without a \
            dataset. MODEL is a model directory; with --random-init its weights are replaced by \
            seeded random ones (for configs without trained weights).
            """)

    @Argument(help: "Model directory (config.json + safetensors).")
    var model: String

    @Option(help: "Rank choices, comma-separated, increasing.") var space = "2,4,8,16"
    @Option(help: "Budget as a fraction of uniform max-rank parameters, in (0, 1].") var budget = 0.4
    @Option(help: "Target module types (all, mlp, qk, or q,k,v,...).") var targets = "all"
    @Option(help: "Training data (.jsonl or .pack); without --train and --val, the synthetic task.")
    var train: String?
    @Option(help: "Validation data (.jsonl or .pack): the search's α set and the fine-tune's eval set.")
    var val: String?
    @Option(help: "Cut .jsonl samples to this many tokens.") var maxLength: Int?
    @Option(help: "Synthetic training samples.") var trainSamples = 48
    @Option(help: "Synthetic validation samples.") var valSamples = 16
    @Option(help: "Synthetic text tokens per sample (3 or more, within max_position_embeddings).")
    var seqLen = 12
    @Option(help: "Search epochs.") var searchEpochs = 2
    @Option(help: "Fine-tune epochs.") var epochs = 3
    @Option(help: "Batch size.") var batchSize = 4
    @Option(help: "Learning rate for A and B.") var lr: Float = 3e-3
    @Option(help: "Learning rate for α.") var alphaLr: Float = 3e-2
    @Option(help: "Random-rank controls (each a different seed).") var randomRuns = 3
    @Option(help: "Seed.") var seed: UInt64 = 0
    @Option(help: "Engine threads (1...64).") var threads: Int?
    @Flag(help: "Replace the weights with seeded random ones.") var randomInit = false
    @Flag(help: "Print JSON.") var json = false
    @OptionGroup var compute: ComputeOptions

    /// The largest sample counts the synthetic task makes.
    static let maxSamples = 1 << 20

    func validate() throws {
        _ = try parseSpace(space)
        guard budget > 0 && budget <= 1 else { throw ValidationError("--budget must be in (0, 1], got \(budget)") }
        try validateData()
        for (name, v) in [("--train-samples", trainSamples), ("--val-samples", valSamples)]
        where !(1...Self.maxSamples).contains(v) {
            throw ValidationError("\(name) must be in 1...\(Self.maxSamples), got \(v)")
        }
        guard seqLen >= 3 else { throw ValidationError("--seq-len must be 3 or more, got \(seqLen)") }
        guard searchEpochs > 0, epochs > 0, batchSize > 0 else {
            throw ValidationError("--search-epochs, --epochs and --batch-size must be positive")
        }
        guard (0...100).contains(randomRuns) else { throw ValidationError("--random-runs must be in 0...100") }
        if let threads, !(1...Engine.maxThreads).contains(threads) {
            throw ValidationError("--threads must be in 1...\(Engine.maxThreads), got \(threads)")
        }
    }

    /// --train and --val come together, as data files.
    func validateData() throws {
        switch (train, val) {
        case (nil, nil): break
        case let (t?, v?): try DataFiles.check([("--train", t), ("--val", v)], maxLength: maxLength)
        default: throw ValidationError("--train and --val go together (neither: the synthetic task)")
        }
    }

    /// The data files, or the synthetic task's samples.
    func datasets(_ m: MllamaModel) throws -> (Dataset, Dataset) {
        if let train, let val {
            let files = try DataFiles(model: model, maxLength: maxLength)
            return (try files.load(train), try files.load(val))
        }
        try checkSizes(m.config)
        return (
            try Dataset.synthetic(config: m.config, count: trainSamples, seqLen: seqLen, seed: seed &+ 1),
            try Dataset.synthetic(config: m.config, count: valSamples, seqLen: seqLen, seed: seed &+ 2)
        )
    }

    /// "4,8,16" as ranks; an entry that is not a positive integer is an error, not dropped.
    func parseSpace(_ text: String) throws -> [Int] {
        let parts = text.split(separator: ",", omittingEmptySubsequences: false)
        let ranks = try parts.map { part -> Int in
            let s = part.trimmingCharacters(in: .whitespaces)
            guard let r = Int(s), r > 0 else { throw ValidationError("--space: \"\(s)\" is not a positive rank") }
            return r
        }
        guard ranks == ranks.sorted(), Set(ranks).count == ranks.count else {
            throw ValidationError("--space must list distinct ranks in increasing order, got \(text)")
        }
        return ranks
    }

    func run() throws {
        do { try runCompare() } catch let e as LoRANASError { throw CLIError(e) }
    }

    func runCompare() throws {
        if let threads { try Engine.setThreads(threads) }
        let m = try MllamaModel(path: model)
        if randomInit { m.initializeRandomly(seed: seed) }
        try compute.apply(to: m)
        let spaceList = try parseSpace(space)
        let spec = try TargetSpec(parsing: targets)
        let (trainSet, valSet) = try datasets(m)
        let t0 = Date()
        let searched = try search(m, trainSet, valSet, space: spaceList, targets: spec)
        let searchTime = Date().timeIntervalSince(t0)
        let rows = try finetuneAll(m, trainSet, valSet, searched: searched, space: spaceList, targets: spec)
        if json {
            print(
                JSON.object([
                    ("search", searched.json), ("search_seconds", .number(searchTime)),
                    ("runs", .array(rows.map(\.json))),
                ]).serialized)
        } else {
            printTable(searched, searchTime: searchTime, rows: rows)
        }
    }

    /// Refuses sequence lengths past the model's positions, and data or batches larger than memory.
    func checkSizes(_ c: MllamaConfig) throws {
        guard seqLen <= c.text.maxPositionEmbeddings else {
            throw LoRANASError.invalidArgument(
                "--seq-len \(seqLen) is past the model's max_position_embeddings (\(c.text.maxPositionEmbeddings))")
        }
        let v = c.vision
        let perSample = Size.product([v.maxNumTiles, v.numChannels, v.imageSize, v.imageSize, 4])
        let data = perSample.flatMap { Size.product([trainSamples + valSamples, $0]) }
        try Memory.require(data, for: "the synthetic task's images (\(trainSamples + valSamples) samples)")
        // A batch's logits and their gradient.
        try Memory.require(
            Size.product([batchSize, seqLen, c.text.vocabSize, 8]),
            for: "a batch of \(batchSize) × \(seqLen) tokens")
    }

    func search(
        _ m: MllamaModel, _ trainSet: Dataset, _ valSet: Dataset, space: [Int],
        targets: TargetSpec
    ) throws -> SearchResult {
        var o = SearchOptions()
        o.targets = targets
        o.space = space
        o.budget = .fraction(budget)
        o.epochs = searchEpochs
        o.batchSize = batchSize
        o.lr = lr
        o.alphaLR = alphaLr
        o.seed = seed
        return try m.search(train: trainSet, validation: valSet, options: o) { e in
            if e.kind == .epoch && !json {
                let alphaLoss = e.validationLoss ?? .nan
                print("search epoch \(e.epoch + 1): train loss \(e.trainLoss), α-step loss \(alphaLoss)")
            }
            return .more
        }
    }

    /// Searched (warm and fresh), uniform at the largest rank and at the rank closest to the
    /// searched count, and the random controls at the searched count.
    func finetuneAll(
        _ m: MllamaModel, _ trainSet: Dataset, _ valSet: Dataset, searched: SearchResult,
        space: [Int], targets: TargetSpec
    ) throws -> [CompareRow] {
        var base = FinetuneOptions()
        base.targets = targets
        base.epochs = epochs
        base.batchSize = batchSize
        base.lr = lr
        base.seed = seed
        base.loraAlpha = searched.loraAlpha
        let count = searched.loraParameters
        let width = m.linears(matching: targets).reduce(0) { $0 + $1.inFeatures + $1.outFeatures }
        let largest = space.last ?? 1
        let closest = space.min { abs($0 * width - count) < abs($1 * width - count) } ?? largest
        var runs: [(String, RankAssignment, AdapterInit)] = [
            ("searched (warm)", .perModule(searched.rankMap), .warm),
            ("searched (fresh)", .perModule(searched.rankMap), .fresh),
            ("uniform r=\(largest)", .uniform(largest), .fresh),
            ("uniform r=\(closest)", .uniform(closest), .fresh),
        ]
        for k in 0..<randomRuns {
            runs.append(
                ("random #\(k + 1)", .random(parameters: count, space: space, seed: seed &+ 100 &+ UInt64(k)), .fresh))
        }
        return try runs.map { name, ranks, initialization in
            var o = base
            o.ranks = ranks
            o.initialization = initialization
            let r = try m.finetune(train: trainSet, validation: valSet, options: o)
            // Answers exist only in chat data: the synthetic task labels every token.
            let accuracy = train == nil ? nil : try m.answerAccuracy(valSet).accuracy
            if !json {
                let ppl = r.evaluations.map { String(format: "%.3f", $0.perplexity) }.joined(separator: " → ")
                let acc = accuracy.map { String(format: ", answer accuracy %.3f", $0) } ?? ""
                print("\(name): \(r.loraParameters) LoRA params, eval ppl \(ppl)\(acc)")
            }
            return CompareRow(name: name, result: r, accuracy: accuracy)
        }
    }

    func printTable(_ searched: SearchResult, searchTime: Double, rows: [CompareRow]) {
        let missed = searched.budgetMet == false ? " (no assignment reaches ±5%: the closest)" : ""
        print(
            "\nsearch: \(searched.steps) steps in \(String(format: "%.1f", searchTime)) s; budget "
                + "\(searched.budgetParameters ?? 0), derived \(searched.loraParameters) LoRA parameters\(missed)")
        let histogram = Dictionary(grouping: searched.ranks, by: \.1).mapValues(\.count).sorted { $0.key < $1.key }
        print("searched ranks: " + histogram.map { "r\($0.key)×\($0.value)" }.joined(separator: " "))
        func cell(_ s: String, _ width: Int) -> String { s.padding(toLength: width, withPad: " ", startingAt: 0) }
        print("\n" + cell("METHOD", 20) + "LORA PARAMS   SHARE     EVAL PPL   ACCURACY   s/EPOCH")
        for row in rows {
            let r = row.result
            let share = 100 * Double(r.loraParameters) / Double(max(1, r.modelParameters))
            let perplexity = r.evaluations.last?.perplexity ?? .nan
            let perEpoch = r.epochTimes.reduce(0, +) / Double(max(1, r.epochTimes.count))
            let accuracy = row.accuracy.map { String(format: "%.4f", $0) } ?? "—"
            print(
                cell(row.name, 20) + cell(String(r.loraParameters), 14) + cell(String(format: "%.2f%%", share), 10)
                    + cell(String(format: "%.4f", perplexity), 11) + cell(accuracy, 11)
                    + String(format: "%.2f", perEpoch))
        }
    }
}

/// One adapter of the comparison: its fine-tune and, on chat data, its answer accuracy on the validation set.
struct CompareRow {
    let name: String
    let result: FinetuneResult
    let accuracy: Double?

    var json: JSON {
        .object([("name", .string(name)), ("result", result.json), ("accuracy", accuracy.map(JSON.number) ?? .null)])
    }
}
