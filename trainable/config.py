"""`TrialConfig`: every knob of one trial, with the paper's defaults, validated in one place.

Knob names are the project's single vocabulary: the same name is a TrialConfig field, a YAML space
key, a ``--set`` key, an MLflow param and a ``param.<name>`` / ``config.<name>`` column. Section
numbers ("section 3.2") refer to docs/METHOD.md.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from fractions import Fraction
from typing import Any, Mapping

from orchestrator.layout import UserError, closest, did_you_mean

from .data import DATASET_NAMES

# Named methods (docs/METHOD.md sections 2, 3, 3.3): method -> (objective, adversary, views).
METHODS: dict[str, tuple[str, str, str]] = {
    "cf-amc-ssl": ("emp", "free", "crop"),
    "robust-emp-ssl": ("emp", "pgd", "crop"),
    "emp-ssl": ("emp", "none", "crop"),
    "simclr": ("simclr", "none", "crop"),
    "robust-simclr": ("simclr", "pgd", "crop"),
    "free-simclr": ("simclr", "free", "crop"),
}
OBJECTIVES = ("emp", "simclr")
ADVERSARIES = ("none", "pgd", "free")
VIEW_FAMILIES = ("crop", "patch")
DEVICES = ("auto", "cpu", "cuda")
# Execution settings (the GPU path, BENCHMARKS.md item 7); "auto" resolves per device, see `ExecutionPlan`.
PRECISIONS = ("auto", "fp32", "bf16")
# The arithmetic of the passes whose input gradient moves a perturbation (free-AT replays, PGD steps).
ATTACK_PRECISIONS = ("fp32", "bf16")
MEMORY_FORMATS = ("auto", "contiguous", "channels_last")

# Fidelity profiles (docs/METHOD.md section 6): the reference-code quirks each one switches on.
FIDELITIES = ("corrected", "reference")
QUIRKS: dict[str, dict[str, bool]] = {
    "corrected": {"accumulate_attack_grads": False, "faithful_schedule": False},
    "reference": {"accumulate_attack_grads": True, "faithful_schedule": True},
}
# The paper's table (docs/METHOD.md section 5): epochs of a PGD or clean row per objective;
# a free-AT row trains round(E / m) of them (section 3.2). Used when `epochs` is not given.
PAPER_EPOCHS = {"emp": 30, "simclr": 500}

# AutoAttack suites (`autoattack_suite`): the published ensemble and cheaper subsets for CPU sweeps.
AUTOATTACK_SUITES: dict[str, tuple[str, ...]] = {
    "standard": ("apgd-ce", "apgd-t", "fab-t", "square"),
    "cheap": ("apgd-ce", "apgd-t"),
    "apgd-ce+square": ("apgd-ce", "square"),
    "apgd-ce": ("apgd-ce",),
    "square": ("square",),
}

# Recipes of the n-crop probe (`ncrop_probe`, docs/METHOD.md section 4.1): the method's SGD one, or the standard
# probe's Adam one (section 4.2).
NCROP_PROBES = ("sgd", "adam")

# Metric names reported by `trainable.loop.train` (the contract with orchestrator and analysis).
BASE_METRICS = ("clean_acc", "robust_acc", "train_loss", "epoch", "train_seconds", "samples_per_second")


class ConfigError(UserError):
    """A bad trial setting; the message is one line naming the key and what is allowed."""


def parse_number(text: Any) -> float:
    """Parse ``0.03``, ``8/255`` or ``1e-4`` (or pass a number through) into a float."""
    if isinstance(text, bool):
        raise ConfigError(f"expected a number, got {text!r}")
    if isinstance(text, (int, float)):
        try:
            return float(text)
        except OverflowError:  # an integer beyond float range (YAML reads 1 followed by 400 zeros as one)
            raise ConfigError(f"expected a number such as 0.03 or 8/255, got an integer with {len(str(text))} "
                              f"digits") from None
    if isinstance(text, str):
        s = text.strip()
        try:
            if s.count("/") == 1:
                num, den = s.split("/")
                return float(Fraction(num.strip())) / float(Fraction(den.strip()))
            return float(s)
        except (ValueError, ZeroDivisionError):
            pass
    raise ConfigError(f"expected a number such as 0.03 or 8/255, got {text!r}")


def metric_name_for_epsilon(eps: float) -> str:
    """``robust_acc@4/255`` for eps = 4/255; other values keep 4 decimals (``robust_acc@0.0300``)."""
    k = eps * 255
    if abs(k - round(k)) < 1e-6:
        return f"robust_acc@{int(round(k))}/255"
    return f"robust_acc@{eps:.4f}"


@dataclass
class TrialConfig:
    """One trial's settings. Defaults are the paper's CF-AMC-SSL (docs/METHOD.md section 3.2)."""

    # --- what is trained -------------------------------------------------------------------------
    method: str | None = "cf-amc-ssl"  # a name from METHODS, or None to spell it out below
    objective: str | None = None  # emp | simclr (filled from method when None)
    adversary: str | None = None  # none | pgd | free
    views: str | None = None  # crop | patch
    # --- data ------------------------------------------------------------------------------------
    dataset: str = "cifar10"
    data_dir: str | None = None
    train_images: int = 0  # 0 = the whole train split; else a class-balanced subset
    # --- schedule and sizes ------------------------------------------------------------------------
    # epochs: None = derived: round(budget_epochs / m) for free AT and budget_epochs otherwise when
    # budget_epochs > 0, else the paper table's value for the method (see `default_epochs`).
    epochs: int = None  # type: ignore[assignment]  # an int once validate() has run
    budget_epochs: int = 0  # equal-budget switch E: PGD/clean rows train E epochs, free-AT rows E/m
    batch_size: int = 100
    num_crops: int = 16
    # --- adversary (sections 2, 3) -----------------------------------------------------------------
    epsilon: float = 8 / 255
    alpha: float = 0.01
    replay_steps: int = 3  # m, free AT only
    pgd_steps: int = 5  # K, PGD only
    # --- loss (section 1.3, 3.3) ------------------------------------------------------------------
    lambda_inv: float = 200.0
    lambda_tcr: float = 1.0
    tcr_eps: float = 0.2
    temperature: float = 0.07
    # --- optimiser (section 1.4) -------------------------------------------------------------------
    lr: float = 0.3
    weight_decay: float = 1e-4
    momentum: float = 0.9
    lars_eta: float = 0.005
    # --- reference-code quirks (sections 2, 3.2, 6) ---------------------------------------------------
    fidelity: str = "corrected"  # corrected | reference: sets every quirk below unless it is given
    # None = the fidelity profile's value; an explicit value overrides the profile (with a warning).
    accumulate_attack_grads: bool = None  # type: ignore[assignment]  # PGD: attack passes add into param grads
    faithful_schedule: bool = None  # type: ignore[assignment]  # free AT: cosine T_max not times m (cyclic LR)
    # --- model (section 1.2) ------------------------------------------------------------------------
    width: int = 64
    blocks_per_stage: int = 2
    feature_dim: int = 4096
    hidden_dim: int = 4096
    z_dim: int = 0  # 0 = objective default: 1024 for EMP, 128 for SimCLR
    # --- evaluation (section 4) ----------------------------------------------------------------------
    eval_every: int = 0  # evaluate every k epochs; 0 = only at the end
    eval_epsilon: float = 8 / 255  # the epsilon of `robust_acc`
    eval_epsilons: tuple[float, ...] = (4 / 255, 8 / 255)  # each gives `robust_acc@{eps}`
    eval_pgd_steps: int = 20
    eval_alpha: float = 0.01
    eval_images: int = 0  # test images used; 0 = the whole test split
    probe_images: int = 0  # train images the linear probe is fitted on; 0 = the pre-training set
    probe_epochs: int = 20
    probe_lr: float = 3e-4
    probe_batch_size: int = 256
    ncrop_eval: int = 0  # n > 0: ncrop_acc and ncrop_robust_acc, a probe on the mean feature of n views (0 = off)
    ncrop_probe: str = "sgd"  # the n-crop probe's recipe: sgd (the method's, below) | adam (the standard probe's)
    ncrop_probe_lr: float = 0.03  # sgd recipe: SGD momentum 0.9, weight decay 5e-5, batch 100, cosine over the epochs
    ncrop_probe_epochs: int = 100  # sgd recipe's epochs (the adam recipe uses probe_epochs, probe_lr)
    robust_probe: bool = False  # also fit a probe on PGD examples: robust_probe_clean_acc, robust_probe_robust_acc
    robust_probe_epsilon: float = 8 / 255  # the PGD the robust probe trains on (encoder + the probe being fitted)
    robust_probe_alpha: float = 0.01
    robust_probe_steps: int = 5
    robust_probe_epochs: int = 0  # 0 = probe_epochs (Adam, probe_lr, probe_batch_size, as the standard probe)
    autoattack: bool = False  # also report `autoattack_acc` at eval_epsilon (optional package pyautoattack)
    autoattack_suite: str = "standard"  # standard | cheap (APGD-CE + APGD-T) | apgd-ce+square | apgd-ce | square
    eval_restarts: int = 0  # > 0: also report `pgd_restarts_acc`, worst case over zero + this many random starts
    eval_restart_steps: int = 0  # PGD steps per start of `pgd_restarts_acc`; 0 = eval_pgd_steps
    square: bool = False  # also report `square_acc`: the gradient-free Square attack (pyautoattack)
    square_queries: int = 5000  # Square's query budget (5000 in standard AutoAttack)
    # --- run -------------------------------------------------------------------------------------
    seed: int = 0
    device: str = "auto"
    threads: int = 0  # torch intra-op threads; 0 = leave torch's default
    # --- execution (how, not what: the same function up to rounding; see `execution_plan`) -----------
    precision: str = "auto"  # auto (bf16 on CUDA, fp32 on CPU) | fp32 | bf16 (autocast, encoder forward only)
    attack_precision: str = "fp32"  # fp32 | bf16: passes whose input gradient moves a perturbation
    memory_format: str = "auto"  # auto (channels_last on CUDA, contiguous on CPU) | contiguous | channels_last
    compile: bool = False  # torch.compile the encoder's training forward

    # ------------------------------------------------------------------------------------------------
    def __post_init__(self) -> None:
        self._derived: set[str] = set()  # fields validate() filled in (not given); not a setting
        self.validate()

    @property
    def resolved(self) -> tuple[str, str, str]:
        """(objective, adversary, views) after expanding `method`."""
        return self.objective, self.adversary, self.views  # type: ignore[return-value]

    @property
    def effective_z_dim(self) -> int:
        if self.z_dim:
            return self.z_dim
        return 1024 if self.objective == "emp" else 128

    def metric_names(self) -> list[str]:
        """Every metric name `train` reports for this config."""
        names = list(BASE_METRICS) + [metric_name_for_epsilon(e) for e in self.eval_epsilons]
        if self.ncrop_eval:
            names += ["ncrop_acc", "ncrop_robust_acc"]
        if self.robust_probe:
            names += ["robust_probe_clean_acc", "robust_probe_robust_acc"]
        if self.autoattack:
            names.append("autoattack_acc")
        if self.eval_restarts:
            names.append("pgd_restarts_acc")
        if self.square:
            names.append("square_acc")
        return names

    def validate(self) -> None:
        """Normalise and check every field; raise ConfigError with one line on the first problem."""
        if self.method is not None:
            if self.method not in METHODS:
                raise ConfigError(_choice_msg("method", self.method, list(METHODS)))
            obj, adv, views = METHODS[self.method]
            self.objective = self.objective or obj
            self.adversary = self.adversary or adv
            self.views = self.views or views
        for key, allowed in (("objective", OBJECTIVES), ("adversary", ADVERSARIES), ("views", VIEW_FAMILIES)):
            value = getattr(self, key)
            if value is None:
                raise ConfigError(f"{key}: not set; give `method` or all of objective/adversary/views")
            if value not in allowed:
                raise ConfigError(_choice_msg(key, value, list(allowed)))
        if self.dataset not in DATASET_NAMES:
            raise ConfigError(_choice_msg("dataset", self.dataset, list(DATASET_NAMES)))
        if self.device not in DEVICES:
            raise ConfigError(_choice_msg("device", self.device, list(DEVICES)))
        if self.precision not in PRECISIONS:
            raise ConfigError(_choice_msg("precision", self.precision, list(PRECISIONS)))
        if self.attack_precision not in ATTACK_PRECISIONS:
            raise ConfigError(_choice_msg("attack_precision", self.attack_precision, list(ATTACK_PRECISIONS)))
        self._resolve_fidelity()
        if self.memory_format not in MEMORY_FORMATS:
            raise ConfigError(_choice_msg("memory_format", self.memory_format, list(MEMORY_FORMATS)))
        if self.autoattack_suite not in AUTOATTACK_SUITES:
            raise ConfigError(_choice_msg("autoattack_suite", self.autoattack_suite, list(AUTOATTACK_SUITES)))
        if self.ncrop_probe not in NCROP_PROBES:
            raise ConfigError(_choice_msg("ncrop_probe", self.ncrop_probe, list(NCROP_PROBES)))
        for key in ("compile", "robust_probe"):
            if not isinstance(getattr(self, key), bool):
                raise ConfigError(f"{key}: expected true or false, got {getattr(self, key)!r}")
        for key in ("epsilon", "eval_epsilon", "alpha", "eval_alpha", "robust_probe_epsilon", "robust_probe_alpha"):
            value = float(getattr(self, key))
            if not (0.0 <= value <= 1.0) or math.isnan(value):
                raise ConfigError(f"{key}: {value} is outside [0, 1]; pixels are in [0, 1]{_per_255_hint(value)}")
            setattr(self, key, value)
        self.eval_epsilons = tuple(float(e) for e in self.eval_epsilons)
        for e in self.eval_epsilons:
            if not 0.0 <= e <= 1.0 or math.isnan(e):
                raise ConfigError(f"eval_epsilons: {e} is outside [0, 1]; pixels are in [0, 1]{_per_255_hint(e)}")
        if self.eval_alpha == 0 and self.eval_pgd_steps > 0:
            raise ConfigError("eval_alpha: 0 leaves the evaluation PGD where it starts; use e.g. 0.01 or 2/255")
        if self.robust_probe_epsilon == 0:
            raise ConfigError("robust_probe_epsilon: 0 makes the robust probe a clean one; use e.g. 8/255")
        if self.robust_probe_alpha == 0:
            raise ConfigError("robust_probe_alpha: 0 leaves the robust probe's PGD where it starts; use e.g. 0.01")
        minimum = {
            "budget_epochs": 0, "batch_size": 2, "num_crops": 1, "replay_steps": 1, "pgd_steps": 1,
            "width": 1, "blocks_per_stage": 1, "feature_dim": 1, "hidden_dim": 1, "z_dim": 0,
            "eval_every": 0, "eval_pgd_steps": 0, "eval_images": 0, "probe_images": 0, "probe_epochs": 0,
            "probe_batch_size": 1, "ncrop_eval": 0, "train_images": 0, "threads": 0, "seed": 0,
            "eval_restarts": 0, "eval_restart_steps": 0, "square_queries": 1, "ncrop_probe_epochs": 1,
            "robust_probe_steps": 1, "robust_probe_epochs": 0,
        }
        for key, low in minimum.items():
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, int):
                if isinstance(value, float) and value.is_integer():
                    value = int(value)
                    setattr(self, key, value)
                else:
                    raise ConfigError(f"{key}: expected an integer, got {value!r}")
            if value < low:
                raise ConfigError(f"{key}: {value} is below the minimum {low}")
        self._resolve_epochs()
        if self.objective == "emp" and self.num_crops < 2:
            raise ConfigError(f"num_crops: {self.num_crops} crops; the EMP invariance term needs at least 2")
        if self.objective == "simclr" and self.num_crops != 2:
            raise ConfigError(f"num_crops: SimCLR uses exactly 2 views, got {self.num_crops}")
        for key in ("lr", "tcr_eps", "temperature", "ncrop_probe_lr"):
            if not float(getattr(self, key)) > 0 or math.isinf(float(getattr(self, key))):
                raise ConfigError(f"{key}: must be > 0 and finite, got {getattr(self, key)}")
        for key in ("lambda_inv", "lambda_tcr", "weight_decay", "momentum", "lars_eta", "probe_lr"):
            if not float(getattr(self, key)) >= 0 or math.isinf(float(getattr(self, key))):
                raise ConfigError(f"{key}: must be >= 0 and finite, got {getattr(self, key)}")

    def _resolve_fidelity(self) -> None:
        """Fill the quirk switches left unset from the `fidelity` profile (docs/METHOD.md section 6)."""
        if self.fidelity not in FIDELITIES:
            raise ConfigError(_choice_msg("fidelity", self.fidelity, list(FIDELITIES)))
        for key, value in QUIRKS[self.fidelity].items():
            given = getattr(self, key)
            if given is None:
                setattr(self, key, value)
                self._derived.add(key)
            elif not isinstance(given, bool):
                raise ConfigError(f"{key}: expected true or false, got {given!r}")

    def _resolve_epochs(self) -> None:
        """`epochs` from `budget_epochs` or the paper's table when not given; a given one must agree."""
        derived = default_epochs(self.objective, self.adversary, self.replay_steps, self.budget_epochs)  # type: ignore[arg-type]
        if self.epochs is None:
            self.epochs = derived
            self._derived.add("epochs")
            return
        value: Any = self.epochs
        if isinstance(value, bool) or not isinstance(value, int):
            if isinstance(value, float) and value.is_integer():
                self.epochs = value = int(value)
            else:
                raise ConfigError(f"epochs: expected an integer, got {value!r}")
        if value < 0:
            raise ConfigError(f"epochs: {value} is below the minimum 0")
        if self.budget_epochs and value != derived:
            raise ConfigError(f"epochs: {value} disagrees with budget_epochs={self.budget_epochs}, which gives "
                              f"{derived} epochs to this {self.adversary} row; set one of the two")

    @property
    def profile(self) -> str:
        """The fidelity profile as run: ``reference``, or ``reference+faithful_schedule=false`` when a
        quirk switch was given against its profile."""
        off = [f"{k}={str(getattr(self, k)).lower()}" for k, v in QUIRKS[self.fidelity].items()
               if getattr(self, k) != v]
        return "+".join([self.fidelity, *off])

    def warnings(self) -> list[str]:
        """Settings that are valid but almost certainly a mistake (one line each, not errors)."""
        out = []
        for key, value in QUIRKS[self.fidelity].items():
            if getattr(self, key) != value:
                out.append(f"{key}: {str(getattr(self, key)).lower()} overrides fidelity={self.fidelity} (which sets "
                           f"{str(value).lower()}); this trial runs neither profile exactly")
        if self.budget_epochs and self.adversary == "free" and self.budget_epochs % self.replay_steps:
            out.append(f"budget_epochs: {self.budget_epochs} is not divisible by replay_steps={self.replay_steps}; "
                       f"the free-AT row trains round({self.budget_epochs}/{self.replay_steps}) = {self.epochs} "
                       f"epochs (the paper's rule, 500 -> 167 at m = 3)")
        for key in ("epsilon", "eval_epsilon") + (("robust_probe_epsilon",) if self.robust_probe else ()):
            out += [w for w in [large_epsilon_warning(key, getattr(self, key))] if w]
        out += [w for w in [large_epsilon_warning("eval_epsilons", e) for e in self.eval_epsilons] if w]
        return out

    def execution_plan(self, device_type: str, bf16_supported: bool = True) -> "ExecutionPlan":
        """How this trial runs on ``device_type`` ('cpu' | 'cuda'): `precision`/`memory_format` "auto" resolved.

        auto = bf16 autocast and channels-last on CUDA (when the GPU supports bf16), fp32 and
        contiguous on CPU (the reference behaviour). ``bf16_supported``: whether the device can
        run bf16 (``torch.cuda.is_bf16_supported()`` on CUDA); an explicit bf16 without it is an error.
        """
        if device_type not in ("cpu", "cuda"):
            raise ConfigError(f"device: cannot plan execution on {device_type!r}; allowed: cpu, cuda")
        gpu = device_type == "cuda"
        precision = self.precision
        if precision == "auto":
            precision = "bf16" if gpu and bf16_supported else "fp32"
        elif precision == "bf16" and not bf16_supported:
            raise ConfigError(f"precision: bf16 is not supported on this {device_type} device; use precision=fp32")
        memory_format = self.memory_format
        if memory_format == "auto":
            memory_format = "channels_last" if gpu else "contiguous"
        if self.attack_precision == "bf16" and not bf16_supported:
            raise ConfigError(f"attack_precision: bf16 is not supported on this {device_type} device; "
                              f"use attack_precision=fp32")
        return ExecutionPlan(device_type, precision, memory_format == "channels_last", self.compile,
                             self.attack_precision)

    # ------------------------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["eval_epsilons"] = list(self.eval_epsilons)
        return d

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> "TrialConfig":
        """Build from a mapping, refusing unknown keys with a did-you-mean suggestion."""
        known = {f.name: f for f in dataclasses.fields(cls)}
        kwargs: dict[str, Any] = {}
        for key, value in values.items():
            if key not in known:
                raise ConfigError(unknown_key_msg(key, list(known)))
            kwargs[key] = coerce_value(key, value, known[key].type)
        return cls(**kwargs)

    def replace(self, **changes: Any) -> "TrialConfig":
        """A copy with `changes` applied (validated). Changing `method` re-derives its parts; settings that
        were derived (epochs, the quirk switches) are derived again from the new values."""
        d = self.to_dict()
        if "method" in changes:
            for part in ("objective", "adversary", "views"):
                if part not in changes:
                    d[part] = None
        for key in self._derived - set(changes) - {"objective", "adversary", "views"}:
            del d[key]  # derived (epochs, quirk switches): derived again from the changed settings
        return TrialConfig.from_dict(merge_settings(d, changes))


@dataclass(frozen=True)
class ExecutionPlan:
    """The resolved execution settings of a trial on one device (`TrialConfig.execution_plan`).

    precision ``bf16`` autocasts the encoder's forward (convolutions, linear layers) during
    pre-training only, and only in the passes whose input gradient moves no perturbation (clean
    updates, the update after a PGD attack); the embeddings are cast back to float32 before the L2
    normalisation, so the losses (the TCR log-determinant, cosines, NT-Xent), the attacks'
    perturbation math (delta, sign steps, projections), the optimiser and the evaluation (probe, PGD
    robust accuracy) are always float32. ``attack_precision`` is the arithmetic of the passes whose
    input gradient moves a perturbation (every free-AT replay, every PGD step): fp32 unless bf16 is
    asked for explicitly (a bf16 backward flips about a tenth of the input-gradient signs).
    """

    device: str  # cpu | cuda
    precision: str  # fp32 | bf16
    channels_last: bool
    compile: bool
    attack_precision: str = "fp32"  # fp32 | bf16


def default_epochs(objective: str, adversary: str, replay_steps: int, budget_epochs: int = 0) -> int:
    """Epochs a row trains when `epochs` is not given (docs/METHOD.md sections 3.2, 5).

    ``budget_epochs`` E > 0: E for PGD and clean rows, round(E / m) (at least 1) for free AT, so all
    rows cost about E clean epochs of passes. Otherwise the paper's table: PGD and clean EMP rows 30,
    SimCLR rows 500, free-AT rows round(30 / m) and round(500 / m) (10 and 167 at m = 3).
    """
    epochs = budget_epochs or PAPER_EPOCHS[objective]
    if adversary == "free":
        return max(1, round(epochs / replay_steps))
    return epochs


def merge_settings(*layers: Mapping[str, Any]) -> dict[str, Any]:
    """Settings layers (preset, base, sampled, ...) merged in order, later ones winning.

    `epochs` and `budget_epochs` are two ways of giving one thing: a layer that gives one of them
    without the other drops the other from the earlier layers (so ``--set budget_epochs=3`` replaces
    a preset's ``epochs: 1``); one layer giving both must give agreeing values (checked by TrialConfig).
    """
    out: dict[str, Any] = {}
    for layer in layers:
        if "budget_epochs" in layer and "epochs" not in layer:
            out.pop("epochs", None)
        if "epochs" in layer and "budget_epochs" not in layer:
            out.pop("budget_epochs", None)
        out.update(layer)
    return out


def field_names() -> list[str]:
    return [f.name for f in dataclasses.fields(TrialConfig)]





# Perturbation budgets above this are valid but almost always a unit mistake (8/255 meant, 0.8 written).
LARGE_EPSILON = 64 / 255


def _per_255_hint(value: float) -> str:
    """'; did you mean 8/255?' for a value written in pixel units (1 < value <= 255)."""
    if 1.0 < value <= 255.0:
        return f"; did you mean {value:g}/255?"
    return "; write e.g. 8/255"


def large_epsilon_warning(key: str, value: Any) -> str | None:
    """A warning for a perturbation budget in (64/255, 1]: allowed, but rarely meant."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    if LARGE_EPSILON < number <= 1.0:
        return (f"{key}: {number:.4g} (= {number * 255:.4g}/255) is a very large perturbation budget (above 64/255); "
                f"typical values are 4/255 to 16/255")
    return None


def unknown_key_msg(key: str, known: list[str]) -> str:
    close = closest(key, known)
    hint = f"; did you mean {close!r}?" if close else ""
    return f"unknown setting {key!r}{hint}"


def _choice_msg(key: str, value: Any, allowed: list[str]) -> str:
    return f"{key}: unknown value {value!r}{did_you_mean(value, allowed)}; allowed: {', '.join(allowed)}"


def coerce_value(key: str, value: Any, type_hint: Any) -> Any:
    """Convert a YAML/CLI value to the field's type: fractions to floats, '3' to 3, 'true' to True."""
    hint = str(type_hint)
    try:
        if hint == "bool":
            if isinstance(value, str):
                low = value.strip().lower()
                if low in ("1", "true", "yes", "on"):
                    return True
                if low in ("0", "false", "no", "off"):
                    return False
                raise ConfigError(f"{key}: expected true or false, got {value!r}")
            if isinstance(value, bool) or value in (0, 1):
                return bool(value)
            raise ConfigError(f"{key}: expected true or false, got {value!r}")
        if hint == "int":
            if isinstance(value, bool):
                raise ConfigError(f"{key}: expected an integer, got {value!r}")
            number = parse_number(value)
            if not float(number).is_integer():
                raise ConfigError(f"{key}: expected an integer, got {value!r}")
            return int(number)
        if hint == "float":
            return parse_number(value)
        if hint.startswith("tuple"):
            items = value
            if isinstance(value, str):
                items = [v for v in value.replace(";", ",").split(",") if v.strip()]
            if not isinstance(items, (list, tuple)):
                items = [items]
            return tuple(parse_number(v) for v in items)
        if hint.startswith("str"):
            if value is None or (isinstance(value, str) and value.strip().lower() in ("none", "null", "")):
                if "None" in hint:
                    return None
                raise ConfigError(f"{key}: a value is required")
            if not isinstance(value, str):
                raise ConfigError(f"{key}: expected text, got {value!r}")
            return value
    except ConfigError as exc:
        if str(exc).startswith(f"{key}:"):
            raise
        raise ConfigError(f"{key}: {exc}") from None
    return value


# --- presets ---------------------------------------------------------------------------------------

PRESETS: dict[str, dict[str, Any]] = {
    # The paper's full sizes: ResNet-18 (64, [2,2,2,2]), 4096/4096/1024, CIFAR-10, table settings.
    "paper": dict(
        dataset="cifar10", width=64, blocks_per_stage=2, feature_dim=4096, hidden_dim=4096,
        batch_size=100, num_crops=16, replay_steps=3, eval_pgd_steps=20,  # epochs: the table's, per method
        eval_images=0, probe_epochs=20, eval_every=0,
    ),
    # A CPU-minutes trial on the embedded real sample (Fashion-MNIST), same topology, narrower.
    "demo": dict(
        dataset="embedded", width=16, blocks_per_stage=1, feature_dim=256, hidden_dim=256, z_dim=64,
        train_images=2000, epochs=1, batch_size=50, num_crops=8, replay_steps=3,
        eval_images=500, eval_pgd_steps=20, probe_epochs=500, eval_every=0,
    ),
    # Seconds: what unit and integration tests use.
    "tiny": dict(
        dataset="embedded", width=8, blocks_per_stage=1, feature_dim=64, hidden_dim=64, z_dim=16,
        train_images=200, epochs=1, batch_size=20, num_crops=4, replay_steps=2, pgd_steps=2,
        eval_images=100, eval_pgd_steps=3, probe_epochs=3, eval_every=0,
    ),
}


def preset(name: str, **overrides: Any) -> TrialConfig:
    """The named preset with `overrides` (validated; unknown keys refused)."""
    if name not in PRESETS:
        raise ConfigError(_choice_msg("preset", name, list(PRESETS)))
    return TrialConfig.from_dict(merge_settings(PRESETS[name], overrides))


def parse_overrides(pairs: list[str]) -> dict[str, Any]:
    """``["epochs=2", "epsilon=4/255"]`` -> {"epochs": 2, "epsilon": 0.0157}, typed per field."""
    known = {f.name: f for f in dataclasses.fields(TrialConfig)}
    out: dict[str, Any] = {}
    for pair in pairs:
        if "=" not in pair:
            raise ConfigError(f"--set {pair!r}: expected key=value, e.g. --set epochs=2")
        key, value = (s.strip() for s in pair.split("=", 1))
        if key not in known:
            raise ConfigError(f"--set: {unknown_key_msg(key, list(known))}")
        try:
            out[key] = coerce_value(key, value, known[key].type)
        except ConfigError as exc:
            raise ConfigError(f"--set {exc}") from None
    return out

