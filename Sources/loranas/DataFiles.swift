import ArgumentParser
import Foundation
import LoRANAS

/// Loads the data files the jobs take: a Cauldron .jsonl is encoded with the model directory's
/// processor (errors name file:line), a .pack is streamed and checked against the model's config.
struct DataFiles {
    let model: ModelConfigFile
    let directory: URL
    let maxLength: Int?

    init(model path: String, maxLength: Int?) throws {
        directory = URL(fileURLWithPath: path)
        model = try ModelConfigFile(directory: directory)
        self.maxLength = maxLength
    }

    /// The dataset in `path`.
    func load(_ path: String) throws -> Dataset {
        if path.hasSuffix(".pack") { return try Dataset.load(pack: path, config: model.config) }
        let processor = try MllamaProcessor.load(directory: directory)
        return try Dataset.cauldron(
            file: try CauldronFile(path: path), processor: processor, model: model, maxLength: maxLength)
    }

    /// Usage checks: every file ends in .jsonl or .pack, and --max-length is positive.
    static func check(_ files: [(String, String)], maxLength: Int?) throws {
        for (option, path) in files where !(path.hasSuffix(".jsonl") || path.hasSuffix(".pack")) {
            throw ValidationError("\(option) must be a Cauldron .jsonl file or a .pack, got \(path)")
        }
        if let maxLength { try inRange("--max-length", maxLength, 1...Int.max) }
    }
}
