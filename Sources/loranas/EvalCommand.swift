import ArgumentParser
import Foundation
import LoRANAS

/// `loranas eval`: perplexity of a model (with an optional adapter) on a data file.
struct EvalCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "eval",
        abstract: "Evaluate a model, optionally with a PEFT adapter, on a data file.",
        discussion: """
            Prints the token-weighted perplexity exp(Σ NLL / Σ answer tokens) and the paper's \
            batch-mean perplexity exp(mean over batches of the batch's mean loss), which differs \
            when batches hold different numbers of answer tokens, and the exact-match answer \
            accuracy: each sample's last answer is generated greedily from the tokens before it and \
            compared token for token (--no-generate skips it).
            """)

    @Argument(help: "Model directory (config.json, weights, tokenizer and processor files).")
    var model: String

    @Option(help: "Data to evaluate: a Cauldron .jsonl (encoded with MODEL's processor) or a .pack.")
    var data: String
    @Option(help: "Cut .jsonl samples to this many tokens.") var maxLength: Int?
    @Option(help: "A PEFT LoRA adapter directory to load onto the model.") var adapter: String?
    @Option(help: "Samples per batch (the batch-mean perplexity depends on it).") var batchSize = 8
    @Option(help: "Engine threads (1...64).") var threads: Int?
    @Flag(inversion: .prefixedNo, help: "Measure answer accuracy by greedy generation.") var generate = true
    @Option(help: "Generate at most this many tokens per answer (default: the reference answer's length).")
    var maxNewTokens: Int?
    @OptionGroup var compute: ComputeOptions
    @OptionGroup var format: OutputOptions

    func validate() throws {
        try DataFiles.check([("--data", data)], maxLength: maxLength)
        try inRange("--batch-size", batchSize, 1...(1 << 20))
        if let threads { try inRange("--threads", threads, 1...Engine.maxThreads) }
        if let maxNewTokens { try inRange("--max-new-tokens", maxNewTokens, 1...(1 << 20)) }
    }

    func run() throws {
        let (e, answers) = try Job.engine { () throws -> (Evaluation, AnswerAccuracy?) in
            if let threads { try Engine.setThreads(threads) }
            let m = try compute.load(model)
            if let adapter { try m.loadPEFTAdapter(adapter) }
            let set = try DataFiles(model: model, maxLength: maxLength).load(data)
            let e = try m.evaluate(set, batchSize: batchSize)
            return (e, generate ? try m.answerAccuracy(set, maxNewTokens: maxNewTokens) : nil)
        }
        if format.json {
            print(JSON.object((e.json.object ?? []) + (answers?.json.object ?? [])).serialized)
        } else {
            print("perplexity (token-weighted)  \(String(format: "%.4f", e.perplexity))")
            print("perplexity (batch mean)      \(String(format: "%.4f", exp(e.meanBatchLoss)))")
            print("answer tokens                \(e.tokens)")
            if let answers {
                let right = answers.checks.filter(\.correct).count
                print("answer accuracy              \(String(format: "%.4f", answers.accuracy)) "
                          + "(\(right) of \(answers.checks.count), greedy, exact match)")
            }
        }
    }
}
