import ArgumentParser
import Foundation
import LoRANAS

/// `loranas generate`: answer a question about images.
struct GenerateCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "generate",
        abstract: "Answer a question about images with the model (and an optional PEFT adapter).",
        discussion: """
            The images (PNG or JPEG, read as transformers' load_image reads paths) and the prompt form \
            one user turn in the Llama-3.2-Vision chat format; the model answers until <|eot_id|> or \
            the tokenizer's EOS, greedily by default (--temperature 0), or by seeded top-p sampling.
            """)

    @Argument(help: "Model directory (config.json, weights, tokenizer and processor files).")
    var model: String

    @Option(name: .customLong("image"), help: "An image (repeat for several, in order).") var images: [String] = []
    @Option(help: "The question.") var prompt: String
    @Option(help: "A PEFT LoRA adapter directory to load onto the model.") var adapter: String?
    @Option(help: "The most tokens to generate.") var maxNewTokens = 64
    @Option(help: "0 for greedy decoding; above 0, sampling at this temperature.") var temperature = 0.0
    @Option(help: "Nucleus sampling: keep the smallest set of tokens whose probability reaches this.") var topP = 1.0
    @Option(help: "Sampling seed.") var seed: UInt64 = 0
    @Option(help: "Engine threads (1...64).") var threads: Int?
    @OptionGroup var compute: ComputeOptions
    @OptionGroup var format: OutputOptions

    func validate() throws {
        try inRange("--max-new-tokens", maxNewTokens, 1...(1 << 20))
        guard temperature.isFinite && temperature >= 0 else { throw ValidationError("--temperature must be ≥ 0") }
        guard topP > 0 && topP <= 1 else { throw ValidationError("--top-p must be in (0, 1]") }
        if let threads { try inRange("--threads", threads, 1...Engine.maxThreads) }
    }

    func run() throws {
        let (answer, ids) = try Job.engine { () throws -> (String, [Int]) in
            if let threads { try Engine.setThreads(threads) }
            let processor = try MllamaProcessor.load(directory: URL(fileURLWithPath: model))
            let decoded = try images.map { try ImageDecoder.decode(Array(try Files.read($0)), options: .path) }
            let m = try compute.load(model)
            if let adapter { try m.loadPEFTAdapter(adapter) }
            let options = GenerationOptions(maxNewTokens: maxNewTokens, temperature: temperature, topP: topP,
                                            seed: seed, stopTokenIds: processor.stopTokenIds)
            let new = try m.generate(try processor.chatPrompt(question: prompt, images: decoded), options: options)
            let ids = new.first ?? []
            return (processor.tokenizer.decode(ids, skipSpecialTokens: true), ids)
        }
        if format.json {
            print(JSON.object([("answer", .string(answer)), ("ids", .array(ids.map { .number(Double($0)) }))])
                .serialized)
        } else {
            print(answer)
        }
    }
}
