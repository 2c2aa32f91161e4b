/// The LoRA-targetable module types of Mllama, named as PEFT's target_modules name them.
public enum ModuleType: String, CaseIterable, Sendable {
    case q = "q_proj", k = "k_proj", v = "v_proj", o = "o_proj"
    case gate = "gate_proj", up = "up_proj", down = "down_proj"
    case fc1, fc2
}
