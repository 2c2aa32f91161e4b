import ArgumentParser
import Foundation
import Synchronization

/// Set by the SIGINT handler; read by the progress callback at each step boundary.
private let interruptFlag = Atomic<Bool>(false)

/// Ctrl-C during a run: the handler only sets a flag (async-signal-safe), the run stops at the
/// next step and checkpoints; a second Ctrl-C kills the process (SA_RESETHAND).
enum Interrupt {
    /// Whether SIGINT arrived since `install()`.
    static var requested: Bool { interruptFlag.load(ordering: .relaxed) }

    /// Installs the handler for the duration of `body`, then restores the previous one.
    static func during<T>(_ body: () throws -> T) rethrows -> T {
        var action = sigaction()
        action.__sigaction_handler.sa_handler = { _ in interruptFlag.store(true, ordering: .relaxed) }
        action.sa_flags = Int32(truncatingIfNeeded: SA_RESETHAND)
        sigemptyset(&action.sa_mask)
        var previous = sigaction()
        sigaction(SIGINT, &action, &previous)
        defer { sigaction(SIGINT, &previous, nil) }
        return try body()
    }

    /// Exit 130 after an interrupted run, saying whether and how it can be resumed.
    static func exit(checkpointDir: String?) -> ExitCode {
        let message: String
        if let dir = checkpointDir {
            message = "Interrupted: the run is saved in \(dir); run the same command again to resume.\n"
        } else {
            message = "Interrupted: nothing was saved (no --checkpoint-dir was given).\n"
        }
        FileHandle.standardError.write(Data(message.utf8))
        return ExitCode(130)
    }
}
