import ArgumentParser
import Foundation
import LoRANAS

struct LoRANASCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "loranas",
        abstract: "Search a LoRA rank for every layer of a vision-language model, and fine-tune it.",
        version: LoRANAS.version,
        subcommands: [
            Inspect.self, Pack.self, SearchCommand.self, FinetuneCommand.self, EvalCommand.self, GenerateCommand.self,
            ExportCommand.self, Compare.self, TasksCommand.self,
        ])
}

// A setting the engine cannot honour (LORANAS_NUM_THREADS=abc) is an error, never ignored.
do {
    try Engine.checkEnvironment()
} catch {
    FileHandle.standardError.write(Data("Error: \(error)\n".utf8))
    exit(1)
}
LoRANASCommand.main()
