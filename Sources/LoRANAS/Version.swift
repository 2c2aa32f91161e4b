/// The engine's semantic version.
public let version = "0.1.0"
