import ArgumentParser
import Foundation
import LoRANAS

struct Pack: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Turn a Cauldron JSONL file into a pack for a model.",
        discussion: """
            Each line of DATA is a record {"images": [...], "texts": [{"user": ..., "assistant": ...}]}; \
            images are paths relative to the file or base64 bytes. Records are rendered in the \
            Llama-3.2-Vision chat format, tokenized, labelled (answers and their <|eot_id|>) and their \
            images resized onto their tile canvases with MODEL's processor settings. The pack is written \
            to a temporary file and renamed into place; Python's Dataset.from_cauldron(DATA).save(OUT) \
            writes the same bytes.
            """)

    @Argument(help: "Model directory (config.json, tokenizer.json, tokenizer_config.json, image settings).")
    var model: String

    @Argument(help: "Cauldron JSONL file.")
    var data: String

    @Option(name: .shortAndLong, help: "The pack to write.")
    var output: String

    @Option(help: "Cut samples to this many tokens (records whose answers or images would be cut are skipped).")
    var maxLength: Int?

    @Option(help: "Engine threads (1...64).")
    var threads: Int?

    func validate() throws {
        if let maxLength, maxLength < 1 { throw ValidationError("--max-length must be at least 1") }
        if let threads, threads < 1 || threads > Engine.maxThreads {
            throw ValidationError("--threads must be in 1...\(Engine.maxThreads)")
        }
    }

    func run() throws {
        do {
            if let threads { try Engine.setThreads(threads) }
            let directory = URL(fileURLWithPath: model)
            let encoder = try CauldronEncoder(processor: try MllamaProcessor.load(directory: directory),
                                              maxLength: maxLength)
            let start = Date()
            let (samples, skipped) = try encoder.pack(file: try CauldronFile(path: data),
                                                      model: try ModelConfigFile(directory: directory), to: output)
            let seconds = Date().timeIntervalSince(start)
            print("wrote \(output): \(samples) samples, \(skipped) skipped, in \(String(format: "%.1f", seconds)) s")
        } catch let e as LoRANASError {
            throw CLIError(e)
        }
    }
}
