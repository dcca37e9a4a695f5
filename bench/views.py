"""Multi-crop views (BENCHMARKS.md item 2): the batched generator vs a per-crop PIL pipeline; views' share of a step.

Baseline (written here, as the reference repos do it in data-loader workers): for every image and
every crop, the spec 1.1 list with PIL and torchvision's classic transforms: RandomResizedCrop(32,
scale=(0.08, 1), ratio=(3/4, 4/3)), RandomHorizontalFlip, RandomApply(ColorJitter(0.4, 0.4, 0.4, 0.2),
p=0.8), RandomGrayscale(0.2), PIL GaussianBlur with p=0.1 and sigma ~ U[0.1, 2], RandomApply(Solarize,
p=0.1), ToTensor. Ours: `trainable.views.make_views` on the (B, 3, 32, 32) float batch. Both make 16
crops of 32x32 per image in this one process, interleaved, medians.
"""

from __future__ import annotations

import random

import torch
from PIL import Image, ImageFilter, ImageOps
from torchvision import transforms as T

from bench.common import interleaved, markdown, median, run_main, spread, table
from trainable.config import preset
from trainable.loop import Trial
from trainable.views import make_views, recipe_for


class PILGaussianBlur:
    """PIL's GaussianBlur(radius=sigma) with probability p, sigma uniform in [lo, hi] (as the reference)."""

    def __init__(self, p: float = 0.1, sigma: tuple[float, float] = (0.1, 2.0)) -> None:
        self.p, self.sigma = p, sigma

    def __call__(self, img: Image.Image) -> Image.Image:
        if random.random() < self.p:
            return img.filter(ImageFilter.GaussianBlur(radius=random.uniform(*self.sigma)))
        return img


class PILSolarize:
    def __call__(self, img: Image.Image) -> Image.Image:
        return ImageOps.solarize(img)  # threshold 128


def pil_pipeline() -> T.Compose:
    """The spec 1.1 crop-based EMP view, one crop per call: PIL image -> (3, 32, 32) float in [0, 1]."""
    return T.Compose([
        T.RandomResizedCrop(32, scale=(0.08, 1.0), ratio=(3 / 4, 4 / 3)),
        T.RandomHorizontalFlip(),
        T.RandomApply([T.ColorJitter(0.4, 0.4, 0.4, 0.2)], p=0.8),
        T.RandomGrayscale(p=0.2),
        PILGaussianBlur(0.1, (0.1, 2.0)),
        T.RandomApply([PILSolarize()], p=0.1),
        T.ToTensor(),
    ])


def to_pil(images_u8: torch.Tensor) -> list[Image.Image]:
    """(B, 3, H, W) uint8 -> B PIL RGB images (done once, outside the timed region, like a dataset's PIL store)."""
    return [Image.fromarray(img.permute(1, 2, 0).contiguous().numpy()) for img in images_u8]


def pil_views(pil_images: list[Image.Image], crops: int, pipeline: T.Compose) -> torch.Tensor:
    """All crops of all images with the per-crop pipeline, stacked crop-major: (crops * B, 3, 32, 32)."""
    return torch.stack([pipeline(img) for _ in range(crops) for img in pil_images])


def test_images(n: int) -> torch.Tensor:
    """n real 32x32 RGB uint8 images (the embedded Fashion-MNIST sample, as the demo trains on)."""
    from trainable.data import load_dataset

    return load_dataset("embedded", "train", None, n, 0).images[:n]


def views_share(quick: bool) -> tuple[float, float, float]:
    """(share, views seconds per step, step seconds) of make_views inside CF-AMC-SSL steps of the demo preset."""
    import trainable.methods as methods_mod

    over = dict(train_images=16, batch_size=8, num_crops=4, width=4, feature_dim=16, hidden_dim=16, z_dim=8) \
        if quick else dict(train_images=500)
    trial = Trial(preset("demo", method="cf-amc-ssl", **over))
    original = methods_mod.make_views
    spent = [0.0]

    def timed_views(*args, **kwargs):
        start = torch_time()
        try:
            return original(*args, **kwargs)
        finally:
            spent[0] += torch_time() - start

    trial.train_epoch()  # warm-up
    methods_mod.make_views = timed_views
    try:
        start = torch_time()
        trial.train_epoch()
        total = torch_time() - start
    finally:
        methods_mod.make_views = original
    steps = trial.steps_per_epoch
    return spent[0] / total, spent[0] / steps, total / steps


def torch_time() -> float:
    import time

    return time.perf_counter()


def run(quick: bool = False) -> str:
    crops = 16
    n_images = 4 if quick else 100
    repeats = 1 if quick else 5
    images_u8 = test_images(n_images)
    images = images_u8.float().div(255)
    pil_images = to_pil(images_u8)
    pipeline = pil_pipeline()
    recipe = recipe_for("emp", "crop")
    gen = torch.Generator().manual_seed(0)
    random.seed(0)
    torch.manual_seed(0)
    threads = torch.get_num_threads()

    def batched_1_thread() -> None:
        torch.set_num_threads(1)
        try:
            make_views(images, crops, recipe, gen)
        finally:
            torch.set_num_threads(threads)

    times = interleaved({
        "PIL per crop": lambda: pil_views(pil_images, crops, pipeline),
        f"batched make_views ({threads} threads)": lambda: make_views(images, crops, recipe, gen),
        "batched make_views (1 thread)": batched_1_thread,
    }, repeats)
    n = crops * n_images
    rate = {k: n / median(v) for k, v in times.items()}
    pil_rate = rate["PIL per crop"]
    speedup = rate[f"batched make_views ({threads} threads)"] / pil_rate
    speedup_1 = rate["batched make_views (1 thread)"] / pil_rate
    share, views_s, step_s = views_share(quick)
    rows = [
        (f"batched views / PIL per-crop baseline, crops/s ({threads} torch threads)", f"{speedup:.1f}x", ">= 10x",
         speedup >= 10),
        ("same, batched at 1 torch thread (PIL is single-threaded)", f"{speedup_1:.1f}x", "informational", None),
        ("share of a CF-AMC-SSL step (demo preset) spent making views", f"{100 * share:.1f}%", "<= 10%",
         share <= 0.10),
    ]
    lines = [table(rows), ""]
    lines.append(f"{n_images} images x {crops} crops of 32x32 = {n} crops per call; {repeats} interleaved repetitions.\n")
    lines += markdown(("generator", "time per call", "crops/s"),
                      [(k, spread(v), f"{rate[k]:,.0f}") for k, v in times.items()])
    lines.append("")
    lines.append(f"CF-AMC-SSL step (demo preset{', shrunk' if quick else ''}): {step_s * 1e3:.0f} ms per minibatch "
                 f"(m replays), of which views {views_s * 1e3:.1f} ms.")
    return "\n".join(lines)


def main() -> None:
    run_main("Multi-crop views: batched on-device generator vs per-crop PIL pipeline", "bench.views: multi-crop views", run)


if __name__ == "__main__":
    main()
