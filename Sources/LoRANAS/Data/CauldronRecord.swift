import Foundation

/// One Cauldron record: `{"images": [...], "texts": [{"user": ..., "assistant": ...}, ...]}`.
///
/// Only the number of images matters to the text path (each becomes one `<|image|>`); other keys
/// of the record and of its turns are ignored.
public struct CauldronRecord: Sendable, Equatable {
    /// One question and its answer.
    public struct Turn: Sendable, Equatable {
        /// The user's question.
        public var user: String
        /// The assistant's answer.
        public var assistant: String

        /// A turn of `user` and `assistant` text.
        public init(user: String, assistant: String) {
            self.user = user
            self.assistant = assistant
        }
    }

    /// The number of images of the record; they all go, in order, before the first question.
    public var imageCount: Int
    /// The dialogue, at least one turn.
    public var turns: [Turn]

    /// A record of `imageCount` images and `turns`; no turns is an error.
    public init(imageCount: Int, turns: [Turn]) throws {
        guard imageCount >= 0 else { throw LoRANASError.invalidArgument("a record cannot have \(imageCount) images") }
        guard !turns.isEmpty else { throw LoRANASError.format("the record has no turns (texts is empty)") }
        self.imageCount = imageCount
        self.turns = turns
    }

    /// Parses a record from its JSON text. `images` may be missing or null (no images); `texts` must
    /// be a non-empty array of objects whose `user` and `assistant` are strings. Errors name the turn.
    public init(json text: String) throws {
        try self.init(json: try JSON.parse(text))
    }

    /// Reads a record from parsed JSON (see ``init(json:)-(String)``).
    public init(json: JSON) throws {
        guard json.object != nil else { throw LoRANASError.format("a Cauldron record must be a JSON object") }
        var images = 0
        if let v = json["images"], !v.isNull {
            guard let list = v.array else { throw LoRANASError.format("the record's images must be an array") }
            images = list.count
        }
        guard let texts = json["texts"]?.array else {
            throw LoRANASError.format("the record has no texts array (a list of {user, assistant} turns)")
        }
        var turns: [Turn] = []
        for (i, turn) in texts.enumerated() {
            guard turn.object != nil else { throw LoRANASError.format("texts[\(i)] must be an object") }
            guard let user = turn["user"]?.string else {
                throw LoRANASError.format("texts[\(i)] has no user turn (a string is needed)")
            }
            guard let assistant = turn["assistant"]?.string else {
                throw LoRANASError.format("texts[\(i)] has no assistant turn (a string is needed)")
            }
            turns.append(Turn(user: user, assistant: assistant))
        }
        try self.init(imageCount: images, turns: turns)
    }

    /// The chat messages of the record: per turn a user message and an assistant message, the
    /// images (as `image` parts) first in the first user message, then its text.
    public var messages: [ChatMessage] {
        var out: [ChatMessage] = []
        for (i, turn) in turns.enumerated() {
            let images = i == 0 ? [ChatPart](repeating: .image, count: imageCount) : []
            out.append(ChatMessage(role: "user", content: .parts(images + [.text(turn.user)])))
            out.append(ChatMessage(role: "assistant", content: .parts([.text(turn.assistant)])))
        }
        return out
    }
}
