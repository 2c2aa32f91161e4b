import ArgumentParser
import Foundation
import LoRANAS

/// What the training jobs share: engine errors as one line, Ctrl-C and progress, atomic outputs.
enum Job {
    /// Runs `body`, turning engine errors into one-line CLI errors.
    @discardableResult
    static func engine<T>(_ body: () throws -> T) throws -> T {
        do { return try body() } catch let e as LoRANASError { throw CLIError(e) }
    }

    /// Runs a search or fine-tune with the progress line and the Ctrl-C handler; an interrupted
    /// run (the callback stopped it) exits with 130 instead of returning.
    static func train<T>(
        _ what: String, run: RunOptions, stopped: (T) -> Bool, _ body: (@escaping ProgressCallback) throws -> T
    ) throws -> T {
        let line = ProgressLine(what: what, epochs: run.epochs, maxSteps: run.maxSteps)
        let result = try Interrupt.during {
            defer { line.finish() }
            return try engine { try body(line.callback) }
        }
        if stopped(result) && Interrupt.requested { throw Interrupt.exit(checkpointDir: run.checkpointDir) }
        return result
    }

    /// Writes `text` to `path` through a temporary file renamed into place.
    static func write(_ text: String, to path: String) throws {
        try createParent(of: path)
        try engine { try World.current().onRankZero { try AtomicFile.write(Data((text + "\n").utf8), to: path) } }
    }

    /// Creates the directory an output file goes into.
    static func createParent(of path: String) throws {
        let parent = URL(fileURLWithPath: path).deletingLastPathComponent().path
        do { try FileManager.default.createDirectory(atPath: parent, withIntermediateDirectories: true) } catch {
            throw CLIError(message: "cannot create the directory \(parent): \(error.localizedDescription)")
        }
    }

    /// Where a search's supernet weights live: beside its JSON (`search.json` →
    /// `search.supernet.safetensors`).
    static func supernetPath(beside json: String) -> String {
        (json.hasSuffix(".json") ? String(json.dropLast(5)) : json) + ".supernet.safetensors"
    }

    /// True on the ranks other than 0 of a run under mpirun: rank 0 speaks for the job.
    nonisolated(unsafe) static var quiet = false

    /// Prints a line on stderr (stdout is kept for --json); rank 0 only.
    static func note(_ text: String) {
        if !quiet { FileHandle.standardError.write(Data((text + "\n").utf8)) }
    }

    /// Sends this process's standard output to /dev/null (ranks other than 0 repeat rank 0's results).
    static func silenceStandardOutput() {
        let null = open("/dev/null", O_WRONLY)
        if null >= 0 {
            dup2(null, STDOUT_FILENO)
            close(null)
        }
    }
}
