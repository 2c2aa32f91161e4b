import ArgumentParser
import Foundation
import LoRANAS

struct LoRANASCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "loranas",
        abstract: "Search a LoRA rank for every layer of a vision-language model, and fine-tune it.",
        version: LoRANAS.version,
        subcommands: [Inspect.self, Compare.self])
}

LoRANASCommand.main()
