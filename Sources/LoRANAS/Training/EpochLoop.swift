import Foundation

/// The position of a run, saved in run states: with the same seed and thread count, resuming
/// from it replays exactly the batches an uninterrupted run would have seen.
struct LoopState: Equatable {
    var epoch = 0
    var stepInEpoch = 0
    var globalStep = 0
    /// Validation batches consumed so far (the search's α steps).
    var valCursor = 0
    var epochTimes: [Double] = []
    var currentEpochTime = 0.0
    var trainLosses: [Float] = []

    var json: JSON {
        .object([
            ("epoch", .number(Double(epoch))), ("step_in_epoch", .number(Double(stepInEpoch))),
            ("global_step", .number(Double(globalStep))), ("val_cursor", .number(Double(valCursor))),
            ("epoch_times", .array(epochTimes.map { .number($0) })), ("current_epoch_time", .number(currentEpochTime)),
        ])
    }

    init() {}

    /// Reads a saved position; every counter must be a non-negative integer.
    init(json: JSON) throws {
        func counter(_ key: String) throws -> Int {
            guard let v = json[key]?.int, v >= 0 else {
                throw LoRANASError.format("run state: \(key) is missing or not a count")
            }
            return v
        }
        epoch = try counter("epoch")
        stepInEpoch = try counter("step_in_epoch")
        globalStep = try counter("global_step")
        valCursor = try counter("val_cursor")
        guard let times = json["epoch_times"]?.array?.compactMap(\.double),
            times.allSatisfy({ $0.isFinite && $0 >= 0 }),
            let current = json["current_epoch_time"]?.double, current.isFinite, current >= 0
        else {
            throw LoRANASError.format("run state: epoch times are missing or not finite")
        }
        epochTimes = times
        currentEpochTime = current
    }

    /// Checks a saved position against the run it is resumed into.
    func check(epochs: Int, stepsPerEpoch: Int) throws {
        guard epoch <= epochs, stepInEpoch <= stepsPerEpoch, epochTimes.count == epoch,
            globalStep == epoch * stepsPerEpoch + stepInEpoch
        else {
            throw LoRANASError.format(
                "run state: position (epoch \(epoch), step \(stepInEpoch), global \(globalStep)) "
                    + "does not fit a run of \(epochs) epochs × \(stepsPerEpoch) steps")
        }
    }
}

/// The epoch and step loop that search and fine-tuning share: the seeded batch order, wall time
/// of training alone, progress reports, run states every `checkpointEvery` steps, at each epoch
/// end and on a stop, and `maxSteps`.
struct EpochLoop {
    let order: BatchOrder
    let epochs: Int
    let maxSteps: Int?
    let checkpointEvery: Int

    init(order: BatchOrder, settings: some RunSettings) {
        self.order = order
        epochs = settings.epochs
        maxSteps = settings.maxSteps
        checkpointEvery = settings.checkpointEvery
    }

    /// What one training step reports: its train loss and the loss to report beside it.
    typealias Step = (inout LoopState, [Int]) throws -> (train: Float, other: Float?)

    /// Runs to the end, to `maxSteps` or to a stop. `step` trains one batch; `endEpoch()` runs
    /// after an epoch's timing stops (evaluation goes there) and returns the epoch's validation
    /// loss; `save(state)` writes a run state. Returns true when the progress callback stopped it.
    func run(
        _ state: inout LoopState, progress: ProgressCallback?, save: (LoopState) throws -> Void,
        step: Step, endEpoch: () throws -> Float?
    ) throws -> Bool {
        while state.epoch < epochs {
            switch try runEpoch(&state, progress: progress, save: save, step: step) {
            case .stopped: return true
            case .reachedMaxSteps: return false
            case .finished: break
            }
            state.epochTimes.append(state.currentEpochTime)
            state.currentEpochTime = 0
            let validation = try endEpoch()
            state.epoch += 1
            state.stepInEpoch = 0
            try save(state)
            let event = ProgressEvent(
                kind: .epoch, epoch: state.epoch - 1, step: state.globalStep,
                stepsPerEpoch: order.batchesPerPass, trainLoss: state.trainLosses.last ?? .nan,
                validationLoss: validation)
            if try stopRequested(progress, event) { return true }
        }
        return false
    }

    private enum EpochEnd { case finished, stopped, reachedMaxSteps }

    /// Reports `event`; true when the callback asked to stop on any rank (every rank stops at the same step).
    private func stopRequested(_ progress: ProgressCallback?, _ event: ProgressEvent) throws -> Bool {
        try World.current().any(progress?(event) == .stop)
    }

    private func runEpoch(
        _ state: inout LoopState, progress: ProgressCallback?, save: (LoopState) throws -> Void,
        step: Step
    ) throws -> EpochEnd {
        while state.stepInEpoch < order.batchesPerPass {
            if let m = maxSteps, state.globalStep >= m {
                try save(state)
                return .reachedMaxSteps
            }
            let t0 = Date()
            let batch = order.batch(pass: state.epoch, index: state.stepInEpoch, label: "train")
            let (loss, other) = try step(&state, batch)
            state.trainLosses.append(loss)
            state.currentEpochTime += Date().timeIntervalSince(t0)
            state.stepInEpoch += 1
            state.globalStep += 1
            let event = ProgressEvent(
                kind: .step, epoch: state.epoch, step: state.globalStep,
                stepsPerEpoch: order.batchesPerPass, trainLoss: loss, validationLoss: other)
            if try stopRequested(progress, event) {
                try save(state)
                return .stopped
            }
            if state.globalStep % checkpointEvery == 0 { try save(state) }
        }
        return .finished
    }
}
