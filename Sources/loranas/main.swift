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

Engine.restartWithPreferredOpenBLASKernels()

// A setting the engine cannot honour (LORANAS_NUM_THREADS=abc) is an error, never ignored. Under mpirun the
// world starts here, in every process alike.
let world: World
do {
    try Engine.checkEnvironment()
    world = try World.current()
} catch {
    FileHandle.standardError.write(Data("Error: \(error)\n".utf8))
    exit(1)
}
Job.quiet = world.rank != 0
if world.rank != 0 { Job.silenceStandardOutput() }
do {
    var command = try LoRANASCommand.parseAsRoot()
    if world.isDistributed {
        Job.note("loranas: \(world.size) processes × \(Engine.threads) threads; \(world.summary)")
    }
    try command.run()
} catch {
    // A failure every rank shares is printed once, by rank 0.
    if world.rank != 0 && world.failedTogether { exit(LoRANASCommand.exitCode(for: error).rawValue) }
    LoRANASCommand.exit(withError: error)
}
