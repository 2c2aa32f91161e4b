import ArgumentParser
import Foundation
import LoRANAS

/// `loranas export --merge`: a checkpoint with the adapter merged into the weights.
struct ExportCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "export",
        abstract: "Merge a PEFT adapter into the model's weights and write a checkpoint.",
        discussion: """
            Writes OUTPUT/config.json and OUTPUT/model.safetensors (F32), with every LoRA module \
            merged into its weight (W + (lora_alpha/r)·B·A), as a unit: transformers' \
            MllamaForConditionalGeneration.from_pretrained(OUTPUT) loads it. The model's tokenizer, \
            processor and chat-template files are copied beside them, so OUTPUT is a complete model \
            directory. The adapter directory itself is already the PEFT export, so --merge is required.
            """)

    @Argument(help: "Model directory (config.json and weights).")
    var model: String

    @Option(help: "The PEFT LoRA adapter directory.") var adapter: String
    @Flag(help: "Merge the adapter into the weights (required).") var merge = false
    @Option(name: .shortAndLong, help: "The model directory to write.") var output: String

    func validate() throws {
        guard merge else {
            throw ValidationError("export needs --merge (the adapter directory is already the PEFT export)")
        }
    }

    func run() throws {
        try Job.engine {
            let m = try MllamaModel(path: model)
            try m.loadPEFTAdapter(adapter)
            try AtomicDirectory.write(output) { staging in
                try m.saveMerged(to: staging)
                try copyProcessorFiles(to: staging)
            }
        }
        print("wrote \(output)")
    }

    /// The files beside the weights that make a model directory usable by a processor.
    static let processorFiles = [
        "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "preprocessor_config.json",
        "processor_config.json", "chat_template.jinja", "chat_template.json", "generation_config.json",
    ]

    private func copyProcessorFiles(to staging: String) throws {
        for name in Self.processorFiles {
            let source = URL(fileURLWithPath: model).appendingPathComponent(name)
            guard FileManager.default.fileExists(atPath: source.path) else { continue }
            let data = try Files.read(source.path)
            try AtomicFile.write(data, to: URL(fileURLWithPath: staging).appendingPathComponent(name).path)
        }
    }
}
