"""`train(config, reporter) -> metrics`: one trial, start to finish, with no Ray inside.

Pre-training epochs (views -> method step), evaluation every `eval_every` epochs and at the end,
a report per epoch (see `trainable.reporting`), an atomic checkpoint of the full trial state so a
resumed run continues exactly, and a guard that stops the trial when the loss stops being finite.
"""

from __future__ import annotations

import logging
import math
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator

import torch

from orchestrator.layout import RunFailed, first_line

from .checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from .config import ConfigError, TrialConfig
from .data import ImageDataset, iterate_minibatches, load_dataset, num_minibatches
from .evaluate import eval_seed, evaluate
from .methods import TrainingMethod
from .model import build_encoder
from .optim import build_optimizer, build_scheduler, schedule_length
from .reporting import CHECKPOINT_FILE, Reporter
from .robustness import require_autoattack

log = logging.getLogger(__name__)

FINITE_CHECK_EVERY = 10  # steps between host syncs that check the running loss is finite
STATE_KEYS = ("config", "epoch", "train_seconds", "history", "model", "optimizer", "scheduler", "free_delta", "rng")


class TrainingDiverged(RunFailed):
    """The training loss became NaN or infinite."""


def resolve_device(name: str) -> torch.device:
    """'auto' -> cuda when available, else cpu; 'cuda' without a GPU is an error, not a silent CPU run."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device: 'cuda' was requested but torch sees no CUDA device; use device=auto or cpu")
    return torch.device(name)


def _on_device(ds: ImageDataset, device: torch.device) -> ImageDataset:
    """The same dataset with its uint8 images and labels moved to ``device`` once (CIFAR-10 train: 150 MB)."""
    return ImageDataset(ds.images.to(device), ds.labels.to(device), ds.num_classes, ds.name)


class Trial:
    """Everything one trial holds: data, model, method, RNG streams; built from a TrialConfig."""

    def __init__(self, config: TrialConfig) -> None:
        self.config = config
        self.device = resolve_device(config.device)
        if config.autoattack or config.square:
            require_autoattack()
        torch.manual_seed(config.seed)
        self.train_set = load_dataset(config.dataset, "train", config.data_dir, config.train_images, config.seed)
        self.test_set = load_dataset(config.dataset, "test", config.data_dir, config.eval_images, config.seed)
        if config.probe_images:
            self.probe_set = load_dataset(config.dataset, "train", config.data_dir, config.probe_images,
                                          config.seed + 1)
        else:
            self.probe_set = self.train_set
        if self.device.type == "cuda":  # the GPU path: fixed shapes (cuDNN autotuning), data resident on the GPU
            torch.backends.cudnn.benchmark = True
            self.train_set = _on_device(self.train_set, self.device)  # no per-step host-to-device image copy
        self.steps_per_epoch = num_minibatches(len(self.train_set), config.batch_size, drop_last=True)
        if self.steps_per_epoch == 0:
            raise ConfigError(f"batch_size: {config.batch_size} is larger than the {len(self.train_set)} "
                             f"training images; lower batch_size or raise train_images")
        self.model = build_encoder(config).to(self.device)
        self.optimizer = build_optimizer(self.model, config.lr, config.momentum, config.weight_decay, config.lars_eta)
        _, adversary, _ = config.resolved
        t_max = schedule_length(self.steps_per_epoch, config.epochs, config.replay_steps,
                                adversary == "free", config.faithful_schedule)
        self.scheduler = build_scheduler(self.optimizer, t_max)
        self.data_generator = torch.Generator().manual_seed(config.seed)
        self.view_generator = torch.Generator(device=self.device).manual_seed(config.seed + 7)
        self.method = TrainingMethod(config, self.model, self.optimizer, self.scheduler, self.view_generator)
        self.epoch = 0  # epochs completed
        self.train_seconds = 0.0
        self.history: list[dict[str, float]] = []
        self._eval_data: tuple[torch.Tensor, ...] | None = None

    # --- state -------------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """Everything a resumed run needs to continue exactly (tensors and plain Python only)."""
        return {
            "config": self.config.to_dict(),
            "epoch": self.epoch,
            "train_seconds": self.train_seconds,
            "history": self.history,
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "free_delta": self.method.perturbation.state_dict() if self.method.perturbation else None,
            "rng": {
                "torch": torch.get_rng_state(),
                "data": self.data_generator.get_state(),
                "views": self.view_generator.get_state().cpu(),
            },
        }

    def check_state(self, state: dict[str, Any]) -> None:
        """Raise CheckpointError (one line) unless ``state`` is a complete state of this trial's model,
        so a damaged checkpoint is refused before anything is loaded, never applied half-way."""
        missing = [k for k in STATE_KEYS if k not in state]
        rng = state.get("rng")
        if not missing and not (isinstance(rng, dict) and all(k in rng for k in ("torch", "data", "views"))):
            missing = ["rng.torch/data/views"]
        if missing:
            raise CheckpointError(f"not a complete trial state (missing: {', '.join(missing)}); not loaded")
        own, theirs = self.model.state_dict(), state["model"]
        if not isinstance(theirs, dict) or set(theirs) != set(own):
            odd = sorted(set(own) ^ set(theirs)) if isinstance(theirs, dict) else ["<not a mapping>"]
            raise CheckpointError(f"model entries do not match this trial's model (e.g. {odd[0]}); not loaded")
        for key, tensor in own.items():
            if not isinstance(theirs[key], torch.Tensor) or theirs[key].shape != tensor.shape:
                shape = tuple(theirs[key].shape) if isinstance(theirs[key], torch.Tensor) else type(theirs[key]).__name__
                raise CheckpointError(f"model entry {key} has shape {shape}, the trial's model {tuple(tensor.shape)}; "
                                      f"not loaded")

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.check_state(state)
        saved = TrialConfig.from_dict(state["config"])
        if saved.to_dict() != self.config.to_dict():
            diff = sorted(k for k, v in saved.to_dict().items() if self.config.to_dict().get(k) != v)
            raise CheckpointError(f"checkpoint was written by a different trial config (differs in: {', '.join(diff)})")
        try:
            self.model.load_state_dict(state["model"])
            self.optimizer.load_state_dict(state["optimizer"])
            self.scheduler.load_state_dict(state["scheduler"])
            if self.method.perturbation is not None and state["free_delta"] is not None:
                self.method.perturbation.load_state_dict(state["free_delta"], self.device)
            torch.set_rng_state(state["rng"]["torch"])
            self.data_generator.set_state(state["rng"]["data"])
            self.view_generator.set_state(state["rng"]["views"].to(self.view_generator.device))
        except (KeyError, TypeError, ValueError, RuntimeError) as exc:  # this Trial is discarded by the caller
            raise CheckpointError(f"inconsistent trial state ({type(exc).__name__}: {first_line(exc)}); "
                                  f"not loaded") from None
        self.epoch = int(state["epoch"])
        self.train_seconds = float(state["train_seconds"])
        self.history = list(state["history"])

    def write_checkpoint(self, directory: Path | str) -> Path:
        """Write the state atomically to ``directory / checkpoint.pt``; return that path."""
        path = Path(directory) / CHECKPOINT_FILE
        save_checkpoint(self.state_dict(), path)
        return path

    # --- work --------------------------------------------------------------------------------------
    def train_epoch(self, progress: Callable[[int, float], None] | None = None) -> float:
        """One pass over the training set; returns the mean loss. Raises TrainingDiverged on NaN/inf."""
        total = torch.zeros((), device=self.device)
        steps = 0
        batches = iterate_minibatches(self.train_set, self.config.batch_size, self.data_generator, self.device)
        for images, _labels in batches:
            total += self.method.step(images)
            steps += 1
            if steps % FINITE_CHECK_EVERY == 0 or steps == self.steps_per_epoch:
                running = total.item() / steps
                if not math.isfinite(running):
                    raise TrainingDiverged(
                        f"training loss became {running} in epoch {self.epoch + 1} by step {steps}; "
                        f"the trial is stopped (try a lower lr, or check lambda_inv/lambda_tcr)")
                if progress:
                    progress(steps, running)
        return total.item() / max(1, steps)

    @torch.no_grad()
    def calibrate_batchnorm(self, batch_size: int = 256) -> None:
        """Estimate BatchNorm running statistics from the training images; no weight changes.

        Used for the untrained encoder (epochs=0): its running statistics are still the init values
        (mean 0, var 1), which would handicap the random baseline in eval mode for no reason.
        """
        norms = [m for m in self.model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
        momenta = [m.momentum for m in norms]
        for m in norms:
            m.reset_running_stats()
            m.momentum = None  # cumulative average over the pass
        self.model.train()
        images = self.train_set.images
        for i in range(0, len(images), batch_size):
            self.model(images[i : i + batch_size].to(self.device).float().div_(255))
        for m, momentum in zip(norms, momenta):
            m.momentum = momentum

    def _eval_tensors(self) -> tuple[torch.Tensor, ...]:
        """Probe and test images as float [0, 1] on the device, converted once per trial."""
        if self._eval_data is None:
            def to_device(ds: ImageDataset) -> tuple[torch.Tensor, torch.Tensor]:
                return ds.images.to(self.device).float().div_(255), ds.labels.to(self.device)

            self._eval_data = (*to_device(self.probe_set), *to_device(self.test_set))
        return self._eval_data

    def evaluate(self) -> dict[str, float]:
        probe_x, probe_y, test_x, test_y = self._eval_tensors()
        return evaluate(self.model, self.config, probe_x, probe_y, test_x, test_y,
                        self.train_set.num_classes, seed=eval_seed(self.config.seed))


@contextmanager
def intra_op_threads(count: int) -> Iterator[None]:
    """torch's intra-op thread count set to ``count`` inside the block (0: left as it is), then restored.

    A trial in its own worker process would not need the restore; a trial run inside a test or a
    benchmark must not change the thread count of everything that runs after it in that process.
    """
    if not count:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def train(
    config: TrialConfig | dict[str, Any],
    reporter: Reporter | None = None,
    resume_from: Path | str | None = None,
    progress: bool = False,
) -> dict[str, float]:
    """Run one trial; return its final metrics (those of the last, always evaluated, epoch).

    ``resume_from``: a checkpoint file or a directory holding ``checkpoint.pt``; the run continues
    from the epoch after it, bit-for-bit on CPU. ``progress`` shows a bar per epoch (tqdm).
    With ``epochs=0`` the untrained, randomly initialised encoder is evaluated. ``threads`` (when
    not 0) holds for the run only.
    """
    if not isinstance(config, TrialConfig):
        config = TrialConfig.from_dict(config)
    with intra_op_threads(config.threads):
        return _run(config, reporter, resume_from, progress)


def _run(config: TrialConfig, reporter: Reporter | None, resume_from: Path | str | None,
         progress: bool) -> dict[str, float]:
    trial = Trial(config)
    if resume_from is not None:
        path = Path(resume_from)
        file = path / CHECKPOINT_FILE if path.is_dir() else path
        try:
            trial.load_state_dict(load_checkpoint(file))
        except CheckpointError as exc:
            message = str(exc)
            raise CheckpointError(message if message.startswith("checkpoint ") else f"checkpoint {file}: {message}") \
                from None
        log.info("resumed from %s after epoch %d", path, trial.epoch)

    if config.epochs == 0 or trial.epoch >= config.epochs:
        if trial.history and trial.epoch >= config.epochs and config.epochs > 0:
            return dict(trial.history[-1])
        untrained = {"epoch": 0.0, "train_loss": float("nan"), "train_seconds": 0.0, "samples_per_second": 0.0}
        trial.calibrate_batchnorm()
        untrained.update(trial.evaluate())
        trial.history.append(untrained)
        if reporter:
            reporter(dict(untrained), trial.write_checkpoint)
        return untrained

    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=trial.steps_per_epoch, unit="step", leave=False)
    metrics: dict[str, float] = {}
    try:
        while trial.epoch < config.epochs:
            if bar is not None:
                bar.reset()
                bar.set_description(f"epoch {trial.epoch + 1}/{config.epochs}")

            def show(step: int, loss: float) -> None:
                assert bar is not None
                bar.n = step
                bar.set_postfix(loss=f"{loss:.3f}")
                bar.refresh()

            start = time.perf_counter()
            loss = trial.train_epoch(show if bar is not None else None)
            seconds = time.perf_counter() - start
            trial.train_seconds += seconds
            trial.epoch += 1
            metrics = {
                "epoch": float(trial.epoch),
                "train_loss": loss,
                "train_seconds": trial.train_seconds,
                "samples_per_second": trial.steps_per_epoch * config.batch_size / max(seconds, 1e-9),
                "lr": trial.optimizer.param_groups[0]["lr"],
            }
            last = trial.epoch == config.epochs
            if last or (config.eval_every and trial.epoch % config.eval_every == 0):
                if bar is not None:
                    bar.set_description(f"epoch {trial.epoch}/{config.epochs}: evaluating")
                metrics.update(trial.evaluate())
            trial.history.append(metrics)
            if reporter:
                reporter(dict(metrics), trial.write_checkpoint)
    finally:
        if bar is not None:
            bar.close()
    return metrics

