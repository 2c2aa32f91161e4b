import Foundation
import LoRANAS

/// Reports a run's steps on stderr: on a terminal one line redrawn with \r (step/total, loss,
/// steps/s, time left), otherwise a plain line every `every` steps and at each epoch end. The
/// callback asks the run to stop once Ctrl-C was pressed.
final class ProgressLine {
    let what: String
    let maxSteps: Int?
    let every: Int
    let epochs: Int
    let live = isatty(STDERR_FILENO) != 0
    private var start: Date?
    private var firstStep = 0
    private var drawn = false

    /// `what` names the job in each line; the total is epochs × steps per epoch, or `maxSteps`.
    init(what: String, epochs: Int, maxSteps: Int?, every: Int = 10) {
        self.what = what
        self.every = every
        self.maxSteps = maxSteps
        self.epochs = epochs
    }

    /// The engine's progress callback.
    var callback: ProgressCallback {
        { [self] event in
            report(event)
            return Interrupt.requested ? .stop : .more
        }
    }

    private func report(_ e: ProgressEvent) {
        let all = min(maxSteps ?? Int.max, epochs * e.stepsPerEpoch)
        if start == nil {  // the rate counts from the first report (a resumed run starts late)
            start = Date()
            firstStep = e.step
        }
        let done = e.step - firstStep
        let seconds = Date().timeIntervalSince(start ?? Date())
        let rate = seconds > 0 ? Double(done) / seconds : 0
        let left = rate > 0 ? Double(all - e.step) / rate : .nan
        let epochEnd = e.kind == .epoch
        var line = epochEnd ? "\(what) epoch \(e.epoch + 1)/\(epochs) done, step" : "\(what) step"
        line += " \(e.step)/\(all)  loss \(String(format: "%.4f", e.trainLoss))"
        if let v = e.validationLoss {
            line += (what == "search" ? "  α-step loss " : "  eval loss ") + String(format: "%.4f", v)
        }
        line += String(format: "  %.2f steps/s  ", rate) + Self.clock(left) + " left"
        write(line, step: e.step, epochEnd: epochEnd)
    }

    private func write(_ line: String, step: Int, epochEnd: Bool) {
        if Job.quiet { return }
        if live {
            let text = epochEnd ? "\r\u{1B}[K" + line + "\n" : "\r\u{1B}[K" + line
            FileHandle.standardError.write(Data(text.utf8))
            drawn = !epochEnd
        } else if epochEnd || step % every == 0 {
            FileHandle.standardError.write(Data((line + "\n").utf8))
        }
    }

    /// Ends a redrawn line so that what follows starts on its own line.
    func finish() {
        if live && drawn { FileHandle.standardError.write(Data("\n".utf8)) }
        drawn = false
    }

    static func clock(_ seconds: Double) -> String {
        guard seconds.isFinite, seconds >= 0 else { return "?" }
        let s = Int(seconds.rounded())
        return s >= 3600
            ? String(format: "%d:%02d:%02d", s / 3600, s / 60 % 60, s % 60) : String(format: "%d:%02d", s / 60, s % 60)
    }
}
