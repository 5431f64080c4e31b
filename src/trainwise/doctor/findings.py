"""A finding: a named problem (or ``healthy``) with its evidence from the run and fixes in order of payoff."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

SEVERITIES = ("info", "warning", "error")

# Every code the doctor can emit, with what it means. Codes are a stable contract (scripts match on them).
CODES = {
    "nan_loss": "the loss became NaN/inf",
    "diverging": "the loss grew instead of falling",
    "not_learning": "the loss did not move from its starting value",
    "lr_too_low": "the loss falls steadily but far too slowly",
    "early_plateau": "the loss stopped improving early, well above what the model should reach",
    "overfitting": "validation loss turned upward while training loss kept falling",
    "underfitting": "training loss stays high: the model cannot fit the training data",
    "oscillating": "the loss swings up and down from step to step",
    "vanishing_gradients": "gradients shrink to almost nothing in the early layers",
    "exploding_gradients": "gradient norms are huge or spiking",
    "dead_relu": "a large share of ReLU units never activate",
    "data_bound": "the loop spends much of its time waiting for data",
    "healthy": "nothing is wrong",
    # preflight
    "constant_features": "some input features never vary",
    "class_imbalance": "the classes are strongly imbalanced",
    "init_loss_off": "the loss at initialisation is far from its expected value",
    "activation_scale": "activation scale shrinks or grows through depth at initialisation",
    "saturated_units": "sigmoid/tanh units are saturated at initialisation",
    "nonfinite_inputs": "the training inputs contain NaN or inf",
    "unscaled_inputs": "ready-made inputs are not standardised (large or very uneven feature scales)",
    "single_class": "the training labels hold a single class",
    "split_mismatch": "the splits hold different classes (an unshuffled or sorted split)",
    "split_leak": "samples of the validation/test split also appear in train",
    "probability_outputs": "the model outputs probabilities but the loss expects logits",
    "linear_stack": "linear layers are stacked with no nonlinearity between them",
    "unregistered_modules": "layers held in plain Python containers are never registered or trained",
    "frozen_params": "parameters have requires_grad=False and do not train",
    "batchnorm_small_batch": "batch norm is trained with tiny batches",
    # from the run
    "crash": "the run stopped with an exception",
    "lr_too_high": "the learning rate is far too high for the optimizer (root cause of the symptoms it lists)",
    "at_chance": "the loss stayed at the chance level ln K for the whole run",
    "val_at_chance": "validation stays at chance while training improves (labels misaligned with inputs?)",
    "loss_above_start": "the training loss stayed above its starting value",
    "lr_decayed_early": "the schedule drove the learning rate to ~0 long before the end",
    "weight_decay_high": "weight decay so strong that the model cannot fit",
}

# Order in which findings are reported: definite mistakes found before step 1 and crashes first, then root causes
# read from the run, then symptoms. Within a tier, errors before warnings; info last.
TIER = {
    "crash": 0, "setup_error": 0,
    "nonfinite_inputs": 1, "single_class": 1, "split_mismatch": 1, "split_leak": 1, "probability_outputs": 1,
    "unregistered_modules": 1, "linear_stack": 1, "frozen_params": 1, "unscaled_inputs": 1,
    "batchnorm_small_batch": 1,
    "lr_too_high": 2, "lr_decayed_early": 2, "weight_decay_high": 2, "val_at_chance": 2, "lr_too_low": 2,
    "nan_loss": 2, "exploding_gradients": 2,
}


@dataclass
class Finding:
    code: str
    severity: str
    message: str
    evidence: dict[str, Any] = field(default_factory=dict)
    fixes: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        assert self.code in CODES, self.code
        assert self.severity in SEVERITIES, self.severity

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def render(findings: list[Finding]) -> str:
    """Plain-text rendering for the console."""
    lines = []
    for f in findings:
        lines.append(f"[{f.severity}] {f.code}: {f.message}")
        if f.evidence:
            lines.append("    evidence: " + ", ".join(f"{k}={_fmt(v)}" for k, v in f.evidence.items()))
        for i, fix in enumerate(f.fixes, 1):
            lines.append(f"    fix {i}: {fix}")
    return "\n".join(lines)


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    if isinstance(v, list) and len(v) > 6:
        return "[" + ", ".join(_fmt(x) for x in v[:6]) + ", …]"
    if isinstance(v, list):
        return "[" + ", ".join(_fmt(x) for x in v) + "]"
    return str(v)
