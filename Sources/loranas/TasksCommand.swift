import ArgumentParser
import Foundation

struct TasksCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tasks",
        abstract: "The built-in vision-language tasks (charts, spatial, geometry, documents, diagrams, digits).",
        subcommands: [TasksMake.self])
}

struct TasksMake: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "make",
        abstract: "Write the procedural tasks as Cauldron JSONL with PNG images.",
        discussion: """
            Writes DIR/<task>/{train,val,eval}.jsonl and DIR/<task>/images/, deterministic by --seed. The \
            pictures are drawn by the Python package's generators (loranas.tasks: Pillow, and scikit-learn's \
            real digit scans), which this command runs with $LORANAS_PYTHON (default: python3); install them with \
            `pip install ./python[tasks]`.
            """)

    @Argument(help: "The output directory.")
    var directory: String

    @Option(help: "Comma-separated task names (default: all six).")
    var tasks: String?

    @Option(help: "Training records per task.")
    var nTrain = 200

    @Option(help: "Validation records per task.")
    var nVal = 50

    @Option(help: "Evaluation records per task.")
    var nEval = 50

    @Option(help: "The seed every picture and question is drawn from.")
    var seed = 0

    @Option(help: "Image side in pixels.")
    var imageSize = 112

    @Option(help: "Also write DIR/captions.jsonl with N caption records per task.")
    var captions = 0

    func validate() throws {
        for (name, n) in [("--n-train", nTrain), ("--n-val", nVal), ("--n-eval", nEval), ("--captions", captions)]
        where n < 0 {
            throw ValidationError("\(name) must be at least 0")
        }
        if seed < 0 { throw ValidationError("--seed must be at least 0") }
        if imageSize < 32 { throw ValidationError("--image-size must be at least 32") }
    }

    func run() throws {
        let python = ProcessInfo.processInfo.environment["LORANAS_PYTHON"] ?? "python3"
        guard try status(python, ["-c", "import loranas.tasks"], quiet: true) == 0 else {
            throw CLIError(message: "\(python) cannot import loranas.tasks: install the Python package with "
                + "`pip install ./python[tasks]`, or set LORANAS_PYTHON to a Python that has it")
        }
        var args = ["-m", "loranas", "tasks", "make", directory, "--n-train", "\(nTrain)", "--n-val", "\(nVal)",
                    "--n-eval", "\(nEval)", "--seed", "\(seed)", "--image-size", "\(imageSize)",
                    "--captions", "\(captions)"]
        if let tasks { args += ["--tasks", tasks] }
        let code = try status(python, args, quiet: false)
        if code != 0 { throw ExitCode(code) }
    }

    /// Runs `python` with `args` (through env, so a bare name is looked up on PATH) and returns its exit status.
    private func status(_ python: String, _ args: [String], quiet: Bool) throws -> Int32 {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = [python] + args
        if quiet {
            p.standardOutput = FileHandle.nullDevice
            p.standardError = FileHandle.nullDevice
        }
        do { try p.run() } catch { throw CLIError(message: "cannot run \(python): \(error)") }
        p.waitUntilExit()
        return p.terminationStatus
    }
}
