import ArgumentParser
import Foundation
import LoRANAS

/// Searched ranks against uniform and random ranks at the same budget, on a synthetic task.
struct Compare: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Search ranks, then fine-tune searched, uniform and random-rank LoRA at equal budget and compare eval perplexity.",
        discussion: """
            Uses a synthetic image-conditioned counting task (see Dataset.synthetic) so it runs on \
            any Mllama checkpoint without a dataset. MODEL is a model directory; with --random-init \
            its weights are replaced by seeded random ones (for configs without trained weights).
            """)

    @Argument(help: "Model directory (config.json + safetensors).")
    var model: String

    @Option(help: "Rank choices, comma-separated.") var space = "2,4,8,16"
    @Option(help: "Budget as a fraction of uniform max-rank parameters.") var budget = 0.4
    @Option(help: "Target module types (all, mlp, qk, or q,k,v,...).") var targets = "all"
    @Option(help: "Training samples.") var train = 48
    @Option(help: "Validation samples (the search's α set and the fine-tune's eval set).") var val = 16
    @Option(help: "Text tokens per sample.") var seqLen = 12
    @Option(help: "Search epochs.") var searchEpochs = 2
    @Option(help: "Fine-tune epochs.") var epochs = 3
    @Option(help: "Batch size.") var batchSize = 4
    @Option(help: "Learning rate for A and B.") var lr: Float = 3e-3
    @Option(help: "Learning rate for α.") var alphaLr: Float = 3e-2
    @Option(help: "Random-rank controls (each a different seed).") var randomRuns = 3
    @Option(help: "Seed.") var seed: UInt64 = 0
    @Option(help: "Engine threads.") var threads: Int?
    @Flag(help: "Replace the weights with seeded random ones.") var randomInit = false
    @Flag(help: "Print JSON.") var json = false

    func run() throws {
        do { try runCompare() } catch let e as LoRANASError { throw CLIError(e) }
    }

    func runCompare() throws {
        if let threads { Engine.threads = threads }
        let m = try MllamaModel(path: model)
        if randomInit { m.initializeRandomly(seed: seed) }
        let trainSet = try Dataset.synthetic(config: m.config, count: train, seqLen: seqLen, seed: seed &+ 1)
        let valSet = try Dataset.synthetic(config: m.config, count: val, seqLen: seqLen, seed: seed &+ 2)
        let spaceList = space.split(separator: ",").compactMap { Int($0.trimmingCharacters(in: .whitespaces)) }
        let spec = try TargetSpec(parsing: targets)

        var so = SearchOptions()
        so.targets = spec; so.space = spaceList; so.budget = .fraction(budget); so.epochs = searchEpochs
        so.batchSize = batchSize; so.lr = lr; so.alphaLR = alphaLr; so.seed = seed
        let t0 = Date()
        let searched = try m.search(train: trainSet, validation: valSet, options: so) { e in
            if e.kind == .epoch && !json { print("search epoch \(e.epoch + 1): train loss \(e.trainLoss), α-step loss \(e.validationLoss ?? .nan)") }
            return .more
        }
        let searchTime = Date().timeIntervalSince(t0)
        let budgetParams = searched.loraParameters

        var fo = FinetuneOptions()
        fo.targets = spec; fo.epochs = epochs; fo.batchSize = batchSize; fo.lr = lr; fo.seed = seed
        fo.loraAlpha = searched.loraAlpha
        var rows: [(String, FinetuneResult)] = []
        func run(_ name: String, _ ranks: RankAssignment, _ initialization: AdapterInit = .fresh) throws {
            var o = fo
            o.ranks = ranks; o.initialization = initialization
            let r = try m.finetune(train: trainSet, validation: valSet, options: o)
            rows.append((name, r))
            if !json { print("\(name): \(r.loraParameters) LoRA params, eval ppl \(r.evaluations.map { String(format: "%.3f", $0.perplexity) }.joined(separator: " → "))") }
        }
        try run("searched (warm)", .perModule(searched.rankMap), .warm)
        try run("searched (fresh)", .perModule(searched.rankMap))
        try run("uniform r=\(spaceList.last!)", .uniform(spaceList.last!))
        // The uniform rank whose count is closest to the searched one.
        let sizes = m.linears(matching: spec).reduce(0) { $0 + $1.inFeatures + $1.outFeatures }
        let closest = spaceList.min { abs($0 * sizes - budgetParams) < abs($1 * sizes - budgetParams) }!
        try run("uniform r=\(closest)", .uniform(closest))
        for k in 0..<randomRuns {
            try run("random #\(k + 1)", .random(parameters: budgetParams, space: spaceList, seed: seed &+ 100 &+ UInt64(k)))
        }
        let final = { (r: FinetuneResult) in r.evaluations.last!.perplexity }
        if json {
            print(JSON.object([
                ("search", searched.json), ("search_seconds", .number(searchTime)),
                ("runs", .array(rows.map { name, r in .object([("name", .string(name)), ("result", r.json)]) })),
            ]).serialized)
            return
        }
        print("\nsearch: \(searched.steps) steps in \(String(format: "%.1f", searchTime)) s; budget \(searched.budgetParameters ?? 0), derived \(budgetParams) LoRA parameters")
        let histogram = Dictionary(grouping: searched.ranks, by: \.1).mapValues(\.count).sorted { $0.key < $1.key }
        print("searched ranks: " + histogram.map { "r\($0.key)×\($0.value)" }.joined(separator: " "))
        print("\n" + "METHOD".padding(toLength: 20, withPad: " ", startingAt: 0) + "LORA PARAMS   SHARE     EVAL PPL   s/EPOCH")
        for (name, r) in rows {
            print(name.padding(toLength: 20, withPad: " ", startingAt: 0)
                  + String(r.loraParameters).padding(toLength: 14, withPad: " ", startingAt: 0)
                  + String(format: "%.2f%%", 100 * Double(r.loraParameters) / Double(r.modelParameters)).padding(toLength: 10, withPad: " ", startingAt: 0)
                  + String(format: "%.4f", final(r)).padding(toLength: 11, withPad: " ", startingAt: 0)
                  + String(format: "%.2f", r.epochTimes.reduce(0, +) / Double(max(1, r.epochTimes.count))))
        }
    }
}
