import ArgumentParser
import Foundation
import LoRANAS

/// `loranas finetune`: a mixed-rank LoRA fine-tune on data files, saved as a PEFT adapter.
struct FinetuneCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "finetune",
        abstract: "Fine-tune a mixed-rank LoRA and save it as a PEFT adapter directory.",
        discussion: """
            --ranks takes a search result (search.json from `loranas search`), one rank N for every \
            target module, or a JSON file {"module": rank}. --init warm starts from the search's \
            supernet slices (search.supernet.safetensors beside search.json); fresh starts A \
            Kaiming-uniform and B at zero. Evaluates --val after every epoch (token-weighted \
            perplexity) and writes OUTPUT as a unit, for PeftModel.from_pretrained. Ctrl-C stops at \
            the next step; with --checkpoint-dir the same command resumes the run.
            """)

    @Argument(help: "Model directory (config.json, weights, tokenizer and processor files).")
    var model: String

    @OptionGroup var data: TrainingDataOptions
    @OptionGroup var targets: TargetOptions

    @Option(help: "search.json, a rank N for every target module, or ranks.json ({\"module\": rank}).")
    var ranks = "8"
    @Option(name: .customLong("init"), help: "warm (from the search's supernet) or fresh.")
    var initialization = AdapterInit.fresh
    @Option(help: "lora_alpha (scaling lora_alpha/r). Default: the search's, else 2 × the largest rank.")
    var loraAlpha: Float?
    @Option(help: "LoRA dropout in [0, 1).") var dropout: Float = 0
    @Option(help: "Samples per evaluation batch.") var evalBatchSize = 8

    @OptionGroup var settings: RunOptions
    @OptionGroup var compute: ComputeOptions
    @OptionGroup var format: OutputOptions

    @Option(name: .shortAndLong, help: "The PEFT adapter directory to write.") var output: String

    func validate() throws {
        if initialization == .warm && Int(ranks) != nil {
            throw ValidationError("--init warm needs --ranks search.json (the search's supernet is its starting point)")
        }
        if let loraAlpha, !(loraAlpha > 0 && loraAlpha.isFinite) {
            throw ValidationError("--lora-alpha must be a positive number, got \(loraAlpha)")
        }
        guard dropout >= 0 && dropout < 1 else { throw ValidationError("--dropout must be in [0, 1), got \(dropout)") }
        try inRange("--eval-batch-size", evalBatchSize, 1...(1 << 20))
    }

    func run() throws {
        let source = try Job.engine { try RankSource(ranks) }
        var o = FinetuneOptions()
        o.targets = try Job.engine { try targets.spec() }
        o.ranks = source.assignment
        o.initialization = initialization
        o.loraAlpha = loraAlpha ?? source.loraAlpha
        o.dropout = dropout
        o.evalBatchSize = evalBatchSize
        try settings.apply(to: &o)
        let m = try Job.engine { try compute.load(model) }
        if initialization == .warm { try attachSupernet(m) }
        let sets = try Job.engine { try data.load(model: model) }
        let result = try Job.train("finetune", run: settings, stopped: \.stopped) { progress in
            try m.finetune(train: sets.train, validation: sets.val, options: o, progress: progress)
        }
        try Job.engine { try PEFTAdapter.save(m.loraAdapters, to: output, baseModel: model) }
        if format.json {
            print(result.json.serialized)
        } else {
            let ppl = result.evaluations.map { String(format: "%.4f", $0.perplexity) }.joined(separator: " → ")
            print("eval perplexity \(String(format: "%.4f", result.initialEvaluation.perplexity)) → \(ppl)")
            print("\(result.loraParameters) LoRA parameters; wrote \(output)")
        }
    }

    /// The supernet saved beside the search result, attached for the warm start.
    func attachSupernet(_ m: MllamaModel) throws {
        let path = Job.supernetPath(beside: ranks)
        guard FileManager.default.fileExists(atPath: path) else {
            throw CLIError(message: "--init warm needs the search's supernet weights: no \(path) "
                           + "(`loranas search -o \(ranks)` writes it beside the result)")
        }
        try Job.engine { try m.attachSupernets(from: path) }
    }
}

extension AdapterInit: ExpressibleByArgument {}

/// What --ranks names: a search result, a uniform rank, or a {module: rank} file.
struct RankSource {
    let assignment: RankAssignment
    /// The search's lora_alpha, when the ranks come from a search.
    let loraAlpha: Float?

    init(_ text: String) throws {
        if let n = Int(text) {
            assignment = .uniform(n)
            loraAlpha = nil
            return
        }
        guard let data = FileManager.default.contents(atPath: text) else {
            throw LoRANASError.notFound("--ranks: no such file \(text)")
        }
        let json: JSON
        do { json = try JSON.parse(data) } catch { throw LoRANASError.format("--ranks: \(text): \(error)") }
        if json["ranks"]?.object != nil {
            let result = try SearchResult(json: json)
            assignment = .perModule(result.rankMap)
            loraAlpha = result.loraAlpha
        } else {
            guard let kv = json.object else {
                throw LoRANASError.format("--ranks: \(text) is neither a search result nor {\"module\": rank}")
            }
            let pairs = try kv.map { k, v in
                guard let r = v.int else {
                    throw LoRANASError.format("--ranks: \(text): rank of \(k) is not an integer")
                }
                return (k, r)
            }
            assignment = .perModule(Dictionary(pairs, uniquingKeysWith: { _, last in last }))
            loraAlpha = nil
        }
    }
}
