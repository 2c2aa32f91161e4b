import ArgumentParser
import Foundation
import LoRANAS

struct Inspect: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Summarize a model directory or a pack, or list a checkpoint's tensors.",
        discussion: """
            PATH is a model directory (config.json + weights), a .safetensors file, or a sharded \
            model.safetensors.index.json. For a model directory it prints the architecture, the \
            parameters per part and the LoRA-targetable linear modules grouped by type, after checking \
            that the weights hold every tensor the config needs with the right shape. For a checkpoint \
            it prints each tensor's name, dtype, shape and bytes, with totals. For a pack (a path ending \
            in .pack) it checks the pack's header and index and prints its samples, tokens, images and \
            processor settings.
            """)

    @Argument(help: "The model directory, checkpoint or pack to read.")
    var path: String

    @Flag(help: "Print JSON instead of text.")
    var json = false

    @Flag(help: "For a model directory, also list every tensor.")
    var tensors = false

    func run() throws {
        do {
            if path.hasSuffix(".pack") { return try inspectPack() }
            let isModel = FileManager.default.fileExists(
                atPath: URL(fileURLWithPath: path).appendingPathComponent("config.json").path)
            let ckpt = try Checkpoint(path: path)
            var out: [(String, JSON)] = [("path", .string(path))]
            var text: [String] = []
            if isModel {
                let config = try MllamaConfig(contentsOf: path)
                try checkWeights(ckpt, config: config)
                let summary = ModelSummary(config: config)
                out += summary.json.object!
                text.append(summary.text)
            }
            if !isModel || tensors {
                let (rows, table) = tensorTable(ckpt)
                out += rows
                text.append(table)
            }
            print(json ? JSON.object(out).serialized : text.joined(separator: "\n\n"))
        } catch let e as LoRANASError {
            throw CLIError(e)
        }
    }

    func inspectPack() throws {
        let summary = try PackSummary(path: path)
        print(json ? summary.json.serialized : summary.text)
    }

    /// Every tensor the config needs is present with the config's shape (no data is read).
    func checkWeights(_ ckpt: Checkpoint, config: MllamaConfig) throws {
        for (name, shape) in MllamaModel.specs(config) {
            guard ckpt.contains(name) else { throw LoRANASError.format("\(path) has no tensor \(name)") }
            let s = try ckpt.info(name).shape
            guard s == shape || (shape == [1] && s.isEmpty) else {
                throw LoRANASError.format("tensor \(name) has shape \(s), expected \(shape) from config.json")
            }
        }
    }

    func tensorTable(_ ckpt: Checkpoint) -> ([(String, JSON)], String) {
        let infos = ckpt.names.compactMap { try? ckpt.info($0) }
        let params = infos.reduce(0) { $0 + $1.count }, bytes = infos.reduce(0) { $0 + $1.byteCount }
        let rows: [JSON] = infos.map { i in
            .object([
                ("name", .string(i.name)), ("dtype", .string(i.dtype.rawValue)),
                ("shape", .array(i.shape.map { .number(Double($0)) })), ("bytes", .number(Double(i.byteCount))),
            ])
        }
        let w = max(4, infos.map(\.name.count).max() ?? 4)
        var lines = ["NAME".padding(toLength: w, withPad: " ", startingAt: 0) + "  DTYPE  SHAPE                  BYTES"]
        for i in infos {
            let shape = "[" + i.shape.map(String.init).joined(separator: ", ") + "]"
            lines.append(
                i.name.padding(toLength: w, withPad: " ", startingAt: 0) + "  "
                    + i.dtype.rawValue.padding(toLength: 5, withPad: " ", startingAt: 0) + "  "
                    + shape.padding(toLength: 21, withPad: " ", startingAt: 0) + "  \(i.byteCount)")
        }
        lines.append("\(infos.count) tensors, \(params) parameters, \(bytes) bytes")
        return (
            [
                ("tensors", .array(rows)), ("total_tensors", .number(Double(infos.count))),
                ("total_parameters", .number(Double(params))), ("total_bytes", .number(Double(bytes))),
            ], lines.joined(separator: "\n")
        )
    }
}

/// An engine error shown as one line on stderr with a non-zero exit code.
struct CLIError: Error, CustomStringConvertible {
    let message: String
    init(_ error: Error) { message = "\(error)" }
    init(message: String) { self.message = message }
    var description: String { message }
}
