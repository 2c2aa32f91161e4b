import ArgumentParser
import Foundation
import LoRANAS

/// `loranas search`: the supernet search on data files, its result JSON and supernet weights.
struct SearchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "search",
        abstract: "Search a LoRA rank for every target module with a weight-sharing supernet.",
        discussion: """
            Trains a LoRA supernet over the rank space on --train (A and B) and --val (the \
            architecture weights α), then derives each module's rank. Writes the result JSON to \
            OUTPUT (what Python's loranas.search returns) and the supernet's weights beside it \
            (search.json → search.supernet.safetensors), for `loranas finetune --init warm`. \
            Ctrl-C stops at the next step; with --checkpoint-dir the run is saved and the same \
            command resumes it.
            """)

    @Argument(help: "Model directory (config.json, weights, tokenizer and processor files).")
    var model: String

    @OptionGroup var data: TrainingDataOptions
    @OptionGroup var targets: TargetOptions

    @Option(help: "Rank choices, comma-separated, increasing.") var space = "4,8,16,32,64"
    @Option(help: "LoRA parameter budget: a fraction in (0, 1] of uniform max-rank (0.4) or a count (N).")
    var budget: String?
    @Option(help: "Learning rate for the architecture weights α (Adam).") var alphaLr: Float = 3e-3

    @OptionGroup var settings: RunOptions
    @OptionGroup var compute: ComputeOptions
    @OptionGroup var format: OutputOptions

    @Option(name: .shortAndLong, help: "The search result JSON to write.") var output: String

    func validate() throws {
        _ = try Ranks.space(space)
        _ = try Ranks.budget(budget)
        guard alphaLr > 0 && alphaLr.isFinite else {
            throw ValidationError("--alpha-lr must be a positive number, got \(alphaLr)")
        }
    }

    /// The engine's options for these arguments.
    func options() throws -> SearchOptions {
        var o = SearchOptions()
        o.targets = try targets.spec()
        o.space = try Ranks.space(space)
        o.budget = try Ranks.budget(budget)
        o.alphaLR = alphaLr
        try settings.apply(to: &o)
        return o
    }

    func run() throws {
        let o = try Job.engine { try options() }
        let m = try Job.engine { try compute.load(model) }
        let sets = try Job.engine { try data.load(model: model) }
        let result = try Job.train("search", run: settings, stopped: \.stopped) { progress in
            try m.search(train: sets.train, validation: sets.val, options: o, progress: progress)
        }
        try Job.createParent(of: output)
        try Job.engine { try SupernetFile.save(m.supernetAdapters, to: Job.supernetPath(beside: output)) }
        try Job.write(result.json.serialized, to: output)
        if format.json {
            print(result.json.serialized)
        } else {
            let histogram = Dictionary(grouping: result.ranks, by: \.1).mapValues(\.count).sorted { $0.key < $1.key }
            print("ranks: " + histogram.map { "r\($0.key)×\($0.value)" }.joined(separator: " "))
            print("\(result.loraParameters) LoRA parameters; wrote \(output) and \(Job.supernetPath(beside: output))")
        }
    }
}
