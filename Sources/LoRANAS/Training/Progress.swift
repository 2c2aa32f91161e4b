import Foundation

/// What a progress callback returns: keep going or stop cleanly (state is checkpointed first
/// when a checkpoint directory is set).
public enum ProgressAction: Sendable { case more, stop }

/// One report to a progress callback.
public struct ProgressEvent: Sendable {
    public enum Kind: String, Sendable { case step, epoch }
    public var kind: Kind
    public var epoch: Int
    /// Global step, 1-based once done.
    public var step: Int
    public var stepsPerEpoch: Int
    public var trainLoss: Float
    /// The α step's loss (search) or the epoch's evaluation loss (fine-tune).
    public var validationLoss: Float?

    public var json: JSON {
        .object([
            ("kind", .string(kind.rawValue)), ("epoch", .number(Double(epoch))), ("step", .number(Double(step))),
            ("steps_per_epoch", .number(Double(stepsPerEpoch))), ("train_loss", .number(Double(trainLoss))),
            ("validation_loss", validationLoss.map { .number(Double($0)) } ?? .null),
        ])
    }
}

public typealias ProgressCallback = (ProgressEvent) -> ProgressAction
