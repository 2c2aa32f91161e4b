import ArgumentParser
import Foundation
import LoRANAS

struct Inspect: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "List a checkpoint's tensors: name, dtype, shape and bytes, with totals.",
        discussion: "PATH is a .safetensors file, a sharded model.safetensors.index.json, or a directory holding either.")

    @Argument(help: "The checkpoint to read.")
    var path: String

    @Flag(help: "Print JSON instead of a table.")
    var json = false

    func run() throws {
        let ckpt: Checkpoint
        do { ckpt = try Checkpoint(path: path) } catch { throw CLIError(error) }
        let infos = ckpt.names.map { try! ckpt.info($0) }
        let params = infos.reduce(0) { $0 + $1.count }, bytes = infos.reduce(0) { $0 + $1.byteCount }
        if json {
            let rows: [JSON] = infos.map { i in
                .object([("name", .string(i.name)), ("dtype", .string(i.dtype.rawValue)),
                         ("shape", .array(i.shape.map { .number(Double($0)) })), ("bytes", .number(Double(i.byteCount)))])
            }
            print(JSON.object([("path", .string(path)), ("tensors", .array(rows)),
                               ("total_tensors", .number(Double(infos.count))), ("total_parameters", .number(Double(params))),
                               ("total_bytes", .number(Double(bytes)))]).serialized)
            return
        }
        let w = max(4, infos.map(\.name.count).max() ?? 4)
        print("NAME".padding(toLength: w, withPad: " ", startingAt: 0) + "  DTYPE  SHAPE                  BYTES")
        for i in infos {
            let shape = "[" + i.shape.map(String.init).joined(separator: ", ") + "]"
            print(i.name.padding(toLength: w, withPad: " ", startingAt: 0) + "  "
                  + i.dtype.rawValue.padding(toLength: 5, withPad: " ", startingAt: 0) + "  "
                  + shape.padding(toLength: 21, withPad: " ", startingAt: 0) + "  \(i.byteCount)")
        }
        print("\(infos.count) tensors, \(params) parameters, \(bytes) bytes")
    }
}

/// An engine error shown as one line on stderr with a non-zero exit code.
struct CLIError: Error, CustomStringConvertible {
    let message: String
    init(_ error: Error) { message = "\(error)" }
    var description: String { "error: \(message)" }
}
