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
            MllamaForConditionalGeneration.from_pretrained(OUTPUT) loads it. The adapter directory \
            itself is already the PEFT export, so --merge is required.
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
            try AtomicDirectory.write(output) { staging in try m.saveMerged(to: staging) }
        }
        print("wrote \(output)")
    }
}
