"""Multi-crop views made in batch on the training device (docs/METHOD.md sections 1.1 and 3.3).

The reference builds C PIL pipelines per image in data-loader workers. Here a batch of images that
is already on the device, ``(B, 3, H, W)`` float in [0, 1], becomes all ``C`` views per image with
batched tensor ops. Every view draws its own random parameters (`sample_view_params`), then the
deterministic pipeline (`apply_view_params`) runs the steps of METHOD.md 1.1 in order:

1. random resized crop (torchvision's ``RandomResizedCrop`` sampling: area fraction uniform in
   ``scale``, log-uniform aspect ratio, 10 attempts, then the central fallback), bilinear resize to
   ``out_size``; 2. horizontal flip; 3. colour jitter with probability ``jitter_p``;
4. grayscale (ITU-R 601-2 luma, 3 channels); 5. gaussian blur; 6. solarize; then a clamp to [0, 1].

Steps 1 and 2 are one ``grid_sample`` call whose sampling grid reproduces
``F.interpolate(crop, mode="bilinear", align_corners=False)`` on each integer crop box, followed by
an optional mirror. The output is **crop-major**: rows ``[c*B, (c+1)*B)`` hold crop ``c`` of images
``0..B-1``, as the losses expect.

All randomness comes from the caller's ``torch.Generator`` (on the images' device), so the same
seed gives the same views; there are no per-sample host syncs and no Python loops over samples
(on CPU the rows are processed in cache-sized chunks, which changes nothing in the result).

Choices and differences from the PIL reference:

- Colour jitter applies brightness, contrast, saturation and hue in an independent random order
  per view, like torchvision's ``ColorJitter`` (one permutation per call, i.e. per view); factors
  and formulas as torchvision (contrast blends with the mean of the image's grayscale).
- Blur: a per-view gaussian with sigma uniform in ``blur_sigma`` (PIL's ``GaussianBlur(radius)``
  takes the radius as the standard deviation). The kernel is the exact, normalised gaussian on
  ``2 * ceil(3 * max(blur_sigma)) + 1`` taps (13 for sigma up to 2), i.e. at least +-3 sigma for
  every view, with edge-replicate padding (PIL extends edges). PIL approximates the gaussian with
  three box blurs, so results differ slightly.
- Solarize inverts pixels >= 0.5 (PIL's threshold 128 of 255 on 8-bit values).
- Pixels stay float between steps (PIL rounds to 8 bits after each op).
- Crops larger than ``out_size`` are downsampled without antialiasing (torchvision antialiases);
  this never happens for 32x32 inputs and ``out_size=32``, where every crop is upsampled or kept.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields

import torch
import torch.nn.functional as F

__all__ = [
    "ViewRecipe",
    "recipe_for",
    "make_views",
    "sample_crop_boxes",
    "resized_crop",
    "adjust_brightness",
    "adjust_contrast",
    "adjust_saturation",
    "adjust_hue",
    "apply_color_jitter",
    "ViewParams",
    "sample_view_params",
    "apply_view_params",
    "gaussian_blur",
    "OBJECTIVES",
    "VIEW_FAMILIES",
]

OBJECTIVES = ("emp", "simclr")
VIEW_FAMILIES = ("crop", "patch")
_CROP_ATTEMPTS = 10  # as torchvision's RandomResizedCrop
_SOLARIZE_THRESHOLD = 0.5  # PIL's ImageOps.solarize threshold 128 of 255 (inverts pixels >= 128)
_CPU_CHUNK_PIXELS = 256 * 32 * 32  # views per CPU chunk x out_size^2: ~3 MB per float32 (N, 3, S, S) tensor


@dataclass(frozen=True)
class ViewRecipe:
    """The augmentation parameters of one view family (METHOD.md 1.1 table, 3.3). Probabilities in [0, 1]."""

    scale: tuple[float, float]
    ratio: tuple[float, float]
    flip_p: float = 0.5
    jitter_p: float = 0.8
    brightness: float = 0.4
    contrast: float = 0.4
    saturation: float = 0.4
    hue: float = 0.2
    grayscale_p: float = 0.2
    blur_p: float = 0.1
    blur_sigma: tuple[float, float] = (0.1, 2.0)
    solarize_p: float = 0.1

    def __post_init__(self) -> None:
        problems = []
        for name in ("flip_p", "jitter_p", "grayscale_p", "blur_p", "solarize_p"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                problems.append(f"{name}={getattr(self, name)} not in [0, 1]")
        for name in ("brightness", "contrast", "saturation"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                problems.append(f"{name}={getattr(self, name)} not in [0, 1]")
        if not 0.0 <= self.hue <= 0.5:
            problems.append(f"hue={self.hue} not in [0, 0.5]")
        for name, low in (("scale", 0.0), ("ratio", 0.0), ("blur_sigma", 0.0)):
            lo, hi = getattr(self, name)
            if not low < lo <= hi:
                problems.append(f"{name}={getattr(self, name)}: need 0 < min <= max")
        if problems:
            raise ValueError("ViewRecipe: " + "; ".join(problems))


def recipe_for(objective: str, views: str) -> ViewRecipe:
    """The recipe of an objective (``emp`` | ``simclr``) and view family (``crop`` | ``patch``).

    emp (METHOD.md 1.1): jitter hue 0.2, blur p 0.1, solarize p 0.1. simclr (METHOD.md 3.3): hue 0.1, no blur,
    no solarize. crop: scale (0.08, 1), ratio (3/4, 4/3). patch: scale 0.25, ratio 1 (a fixed
    quarter-area square, 16x16 of a 32x32 image).
    """
    if objective not in OBJECTIVES:
        raise ValueError(f"objective: {objective!r} is not one of {OBJECTIVES}")
    if views not in VIEW_FAMILIES:
        raise ValueError(f"views: {views!r} is not one of {VIEW_FAMILIES}")
    crop = {"crop": ((0.08, 1.0), (3 / 4, 4 / 3)), "patch": ((0.25, 0.25), (1.0, 1.0))}[views]
    if objective == "emp":
        return ViewRecipe(scale=crop[0], ratio=crop[1])
    return ViewRecipe(scale=crop[0], ratio=crop[1], hue=0.1, blur_p=0.0, solarize_p=0.0)


# --- random numbers ----------------------------------------------------------------------------------
def _uniform(shape: tuple[int, ...], low: float, high: float, generator: torch.Generator,
             device: torch.device) -> torch.Tensor:
    """Float32 uniform draws in [low, high) of ``shape`` on ``device``."""
    return torch.rand(shape, generator=generator, device=device) * (high - low) + low


def _bernoulli(n: int, p: float, generator: torch.Generator, device: torch.device) -> torch.Tensor:
    """(n,) bool, each True with probability p."""
    return torch.rand(n, generator=generator, device=device) < p


def rgb_to_grayscale(images: torch.Tensor, num_output_channels: int = 1) -> torch.Tensor:
    """ITU-R 601-2 luma of (..., 3, H, W) as (..., 1 or 3, H, W): torchvision's ``rgb_to_grayscale``, op for op.

    Written here so that importing the trainable does not import torchvision (whose package import
    pulls in torch._dynamo, about a second per trial worker; BENCHMARKS.md item 4).
    """
    r, g, b = images.unbind(dim=-3)
    luma = r.mul(0.2989).add_(g, alpha=0.587).add_(b, alpha=0.114).unsqueeze(dim=-3)
    return luma.expand(images.shape) if num_output_channels == 3 else luma


def _where_rows(mask: torch.Tensor, new: torch.Tensor, old: torch.Tensor) -> torch.Tensor:
    return torch.where(mask.view(-1, 1, 1, 1), new, old)


# --- 1 + 2: random resized crop and flip -------------------------------------------------------------
def sample_crop_boxes(n: int, height: int, width: int, scale: tuple[float, float], ratio: tuple[float, float],
                      generator: torch.Generator, device: torch.device | str = "cpu") -> torch.Tensor:
    """``n`` crop boxes drawn as torchvision's ``RandomResizedCrop.get_params``: (n, 4) long (top, left, h, w).

    Each box tries 10 candidates at once (area fraction uniform in ``scale``, aspect ratio w/h
    log-uniform in ``ratio``, sizes rounded, position uniform) and keeps the first that fits; if none
    fits, the central crop of the whole image with its ratio clamped to ``ratio``.
    """
    device = torch.device(device)
    shape = (n, _CROP_ATTEMPTS)
    area = height * width * _uniform(shape, scale[0], scale[1], generator, device)
    aspect = torch.exp(_uniform(shape, math.log(ratio[0]), math.log(ratio[1]), generator, device))
    w = torch.round(torch.sqrt(area * aspect))
    h = torch.round(torch.sqrt(area / aspect))
    fits = (w > 0) & (w <= width) & (h > 0) & (h <= height)
    # Position uniform over the valid offsets: randint(0, H - h + 1) as floor(u * (H - h + 1)).
    top = torch.floor(torch.rand(shape, generator=generator, device=device) * (height - h + 1).clamp(min=1))
    left = torch.floor(torch.rand(shape, generator=generator, device=device) * (width - w + 1).clamp(min=1))
    candidates = torch.stack([top, left, h, w], dim=-1).long()  # (n, attempts, 4)
    first = fits.int().argmax(dim=1)  # index of the first fitting attempt (0 if none)
    chosen = candidates[torch.arange(n, device=device), first]  # (n, 4)

    # Central fallback (torchvision): the whole image, its aspect ratio clamped into `ratio`.
    in_ratio = width / height
    if in_ratio < min(ratio):
        fw, fh = width, int(round(width / min(ratio)))
    elif in_ratio > max(ratio):
        fw, fh = int(round(height * max(ratio))), height
    else:
        fw, fh = width, height
    fallback = torch.tensor([(height - fh) // 2, (width - fw) // 2, fh, fw], device=device)
    return torch.where(fits.any(dim=1, keepdim=True), chosen, fallback)


def _sample_positions(start: torch.Tensor, length: torch.Tensor, out_size: int) -> torch.Tensor:
    """Source pixel coordinates (n, out_size) of a bilinear resize of [start, start + length) to out_size.

    Half-pixel centres and clamping to the crop, as ``F.interpolate(align_corners=False)`` on the crop.
    """
    k = torch.arange(out_size, device=start.device, dtype=torch.float32)
    length = length.float()[:, None]
    src = (k[None, :] + 0.5) * (length / out_size) - 0.5
    return start.float()[:, None] + src.clamp(min=0.0).minimum(length - 1)


def resized_crop(images: torch.Tensor, boxes: torch.Tensor, flips: torch.Tensor, out_size: int) -> torch.Tensor:
    """Crop each image to its box, bilinearly resize to ``out_size``, mirror where ``flips``.

    images (N, 3, H, W); boxes (N, 4) long (top, left, h, w); flips (N,) bool -> (N, 3, out_size, out_size).
    One ``grid_sample``; equals torchvision's ``resized_crop`` + ``horizontal_flip`` when no box is
    larger than ``out_size`` (no antialiasing is applied to downsampled crops).
    """
    n, _, height, width = images.shape
    ys = _sample_positions(boxes[:, 0], boxes[:, 2], out_size)  # (N, S) rows
    xs = _sample_positions(boxes[:, 1], boxes[:, 3], out_size)  # (N, S) columns
    xs = torch.where(flips[:, None], xs.flip(1), xs)
    # align_corners=False: -1 and +1 are the outer edges of the image, pixel p is at (2p + 1) / size - 1
    # (exact in floating point for power-of-two sizes, so a full-image box is exactly the identity).
    gx = ((2.0 * xs + 1.0) / width - 1.0)[:, None, :].expand(n, out_size, out_size)
    gy = ((2.0 * ys + 1.0) / height - 1.0)[:, :, None].expand(n, out_size, out_size)
    grid = torch.stack([gx, gy], dim=-1).to(images.dtype)
    return F.grid_sample(images, grid, mode="bilinear", padding_mode="border", align_corners=False)


# --- 3: colour jitter (per-sample factors, as torchvision's ColorJitter defines them) -----------------
BRIGHTNESS, CONTRAST, SATURATION, HUE = range(4)  # op ids of the colour jitter
_NEUTRAL = (1.0, 1.0, 1.0, 0.0)  # factors that leave an image unchanged, per op id


def _blend_ops(images: torch.Tensor, op_ids: torch.Tensor, factors: torch.Tensor) -> torch.Tensor:
    """One blend op per row: brightness, contrast or saturation by ``op_ids`` (N,), factors (N,).

    As torchvision: ``clamp(f * x + (1 - f) * ref)`` with ref 0 (brightness), the mean of the
    grayscale image (contrast) or the grayscale image (saturation). A factor of 1 is the identity.
    """
    gray = rgb_to_grayscale(images)  # (N, 1, H, W)
    mean = gray.mean(dim=(-3, -2, -1), keepdim=True)
    op_ids = op_ids.view(-1, 1, 1, 1)
    ref = torch.where(op_ids == SATURATION, gray, torch.where(op_ids == CONTRAST, mean, torch.zeros_like(mean)))
    f = factors.to(images.dtype).view(-1, 1, 1, 1)
    return (images * f + ref * (1.0 - f)).clamp(0.0, 1.0)


def _fill(images: torch.Tensor, op_id: int) -> torch.Tensor:
    return torch.full((images.shape[0],), op_id, device=images.device)


def adjust_brightness(images: torch.Tensor, factors: torch.Tensor) -> torch.Tensor:
    """(N, 3, H, W) times factors (N,), clamped to [0, 1]."""
    return _blend_ops(images, _fill(images, BRIGHTNESS), factors)


def adjust_contrast(images: torch.Tensor, factors: torch.Tensor) -> torch.Tensor:
    """Blend each image (N, 3, H, W) with the mean of its grayscale by factors (N,), clamped."""
    return _blend_ops(images, _fill(images, CONTRAST), factors)


def adjust_saturation(images: torch.Tensor, factors: torch.Tensor) -> torch.Tensor:
    """Blend each image (N, 3, H, W) with its grayscale by factors (N,), clamped."""
    return _blend_ops(images, _fill(images, SATURATION), factors)


def adjust_hue(images: torch.Tensor, hue_factors: torch.Tensor) -> torch.Tensor:
    """Rotate the hue of each image (N, 3, H, W) by hue_factors (N,) in [-0.5, 0.5] turns, via HSV."""
    r, g, b = images.unbind(dim=-3)
    value = torch.maximum(torch.maximum(r, g), b)
    delta = value - torch.minimum(torch.minimum(r, g), b)  # = value * saturation
    safe = torch.where(delta > 0, delta, torch.ones_like(delta))
    # Hue in sixths of a turn, by which channel is the maximum (r first, then g, on ties).
    hue = torch.where(value == r, (g - b) / safe,
                      torch.where(value == g, 2.0 + (b - r) / safe, 4.0 + (r - g) / safe))
    hue = torch.remainder(hue / 6.0 + hue_factors.to(images.dtype).view(-1, 1, 1), 1.0)
    # HSV -> RGB: channel(n) = V - V*S*clamp(min(k, 4 - k), 0, 1) with k = (n + 6*hue) mod 6, n = 5, 3, 1.
    channels = []
    for n in (5.0, 3.0, 1.0):
        k = torch.remainder(n + hue * 6.0, 6.0)
        channels.append(value - delta * torch.minimum(k, 4.0 - k).clamp(0.0, 1.0))
    return torch.stack(channels, dim=-3)


def apply_color_jitter(images: torch.Tensor, factors: torch.Tensor, order: torch.Tensor,
                       apply: torch.Tensor) -> torch.Tensor:
    """Colour jitter with given parameters: (N, 3, H, W) -> (N, 3, H, W).

    factors (N, 4): brightness, contrast, saturation, hue factor per row; order (N, 4) long: a
    permutation of the op ids (BRIGHTNESS, CONTRAST, SATURATION, HUE) per row, applied left to right;
    apply (N,) bool: rows to jitter (the others are returned unchanged).

    Cost: the hue (the expensive op) runs once on all rows: first every row's blend ops before
    its hue, then the hue, then the blend ops after it. On CPU each op runs on the rows that take it
    only (`_apply_color_jitter_rows`: the same values, a fifth less work).
    """
    hue_step = (order == HUE).int().argmax(dim=1)  # (N,) position of the hue in each row's order
    if images.device.type == "cpu":
        return _apply_color_jitter_rows(images, factors, order, apply, hue_step)
    return _apply_color_jitter_where(images, factors, order, apply, hue_step)


def _apply_color_jitter_where(images: torch.Tensor, factors: torch.Tensor, order: torch.Tensor, apply: torch.Tensor,
                              hue_step: torch.Tensor) -> torch.Tensor:
    """`apply_color_jitter` on every row, inactive rows with neutral factors or selected away (no host sync)."""
    neutral = torch.tensor(_NEUTRAL, device=images.device, dtype=factors.dtype)
    rows = torch.arange(len(order), device=order.device)

    def blend_step(x: torch.Tensor, step: int, active: torch.Tensor) -> torch.Tensor:
        op_ids = order[:, step].clamp(max=SATURATION)  # a hue slot is inactive here anyway
        f = torch.where(active, factors[rows, op_ids], neutral[op_ids])
        return _blend_ops(x, op_ids, f)

    for step in range(3):  # blend ops before the hue (they sit at steps 0..2)
        images = blend_step(images, step, apply & (step < hue_step))
    images = _where_rows(apply, adjust_hue(images, torch.where(apply, factors[:, HUE], 0.0)), images)
    for step in range(1, 4):  # blend ops after the hue (steps 1..3)
        images = blend_step(images, step, apply & (step > hue_step))
    return images


def _apply_color_jitter_rows(images: torch.Tensor, factors: torch.Tensor, order: torch.Tensor, apply: torch.Tensor,
                             hue_step: torch.Tensor) -> torch.Tensor:
    """`apply_color_jitter` computing each op on the rows that take it only (CPU: indexing needs the row count).

    Equal values: every op is per row (elementwise, or a mean over the row's own pixels), and a
    blend op with the neutral factor 1 is exactly a clamp to [0, 1], which all rows still get.
    """
    def blend_step(x: torch.Tensor, step: int, active: torch.Tensor) -> torch.Tensor:
        rows = active.nonzero().squeeze(1)
        if len(rows):
            op_ids = order[rows, step].clamp(max=SATURATION)
            blended = _blend_ops(x[rows], op_ids, factors[rows, op_ids])
        x = x.clamp_(0.0, 1.0)  # = the neutral blend of the other rows
        if len(rows):
            x[rows] = blended
        return x

    images = images.clone()  # the caller's tensor is not modified
    for step in range(3):  # blend ops before the hue
        images = blend_step(images, step, apply & (step < hue_step))
    rows = apply.nonzero().squeeze(1)
    if len(rows):
        images[rows] = adjust_hue(images[rows], factors[rows, HUE])
    for step in range(1, 4):  # blend ops after the hue
        images = blend_step(images, step, apply & (step > hue_step))
    return images


# --- 5: gaussian blur -----------------------------------------------------------------------------------
def gaussian_blur(images: torch.Tensor, sigmas: torch.Tensor, radius: int) -> torch.Tensor:
    """Separable gaussian blur with one sigma per image: (N, 3, H, W), sigmas (N,) -> (N, 3, H, W).

    Kernel: the normalised gaussian on ``2 * radius + 1`` taps; edge-replicate padding. One grouped
    convolution per direction.
    """
    n, channels, height, width = images.shape
    taps = torch.arange(-radius, radius + 1, device=images.device, dtype=torch.float32)
    kernel = torch.exp(-0.5 * (taps[None, :] / sigmas.float()[:, None]) ** 2)
    kernel = (kernel / kernel.sum(dim=1, keepdim=True)).to(images.dtype)  # (N, K)
    kernel = kernel.repeat_interleave(channels, dim=0)  # (N*3, K), one per channel of each image
    x = images.reshape(1, n * channels, height, width)
    x = F.pad(x, (radius, radius, radius, radius), mode="replicate")
    x = F.conv2d(x, kernel[:, None, None, :], groups=n * channels)  # along width
    x = F.conv2d(x, kernel[:, None, :, None], groups=n * channels)  # along height
    return x.reshape(n, channels, height, width)


def _blur_rows(views: torch.Tensor, chosen: torch.Tensor, sigmas: torch.Tensor, radius: int) -> torch.Tensor:
    """``views`` with the rows in ``chosen`` (N,) blurred by `gaussian_blur` with their ``sigmas``.

    On CPU only the chosen rows (p = 0.1 of them in EMP's recipe) are convolved, in place in
    ``views`` (a fresh tensor of the pipeline): the same values as blurring every row and keeping
    the chosen ones, at a tenth of the cost. Elsewhere every row is blurred and selected with
    ``torch.where``, which needs no host sync for the row count.
    """
    if views.device.type != "cpu":
        return _where_rows(chosen, gaussian_blur(views, sigmas, radius), views)
    rows = chosen.nonzero().squeeze(1)
    if len(rows):
        views[rows] = gaussian_blur(views[rows], sigmas[rows], radius)
    return views


# --- the pipeline ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ViewParams:
    """The random draws of N views (all tensors have N rows, on the images' device)."""

    boxes: torch.Tensor  # (N, 4) long: top, left, h, w
    flip: torch.Tensor  # (N,) bool
    jitter: torch.Tensor  # (N,) bool
    jitter_factors: torch.Tensor  # (N, 4): brightness, contrast, saturation, hue
    jitter_order: torch.Tensor  # (N, 4) long: a permutation of the op ids per view
    grayscale: torch.Tensor  # (N,) bool
    blur: torch.Tensor  # (N,) bool
    blur_sigma: torch.Tensor  # (N,)
    solarize: torch.Tensor  # (N,) bool

    def rows(self, start: int, stop: int) -> ViewParams:
        """The draws of views ``start..stop-1``."""
        return ViewParams(**{f.name: getattr(self, f.name)[start:stop] for f in fields(self)})


def sample_view_params(n: int, height: int, width: int, recipe: ViewRecipe, generator: torch.Generator,
                       device: torch.device | str = "cpu") -> ViewParams:
    """Draw the parameters of ``n`` independent views of (height, width) images, in a fixed order.

    Jitter factors as torchvision's ``ColorJitter``: brightness, contrast, saturation uniform in
    [1 - x, 1 + x], hue uniform in [-hue, hue], the four ops in a random order per view.
    """
    device = torch.device(device)
    boxes = sample_crop_boxes(n, height, width, recipe.scale, recipe.ratio, generator, device)
    flip = _bernoulli(n, recipe.flip_p, generator, device)
    jitter = _bernoulli(n, recipe.jitter_p, generator, device)
    jitter_factors = torch.stack([
        _uniform((n,), 1 - recipe.brightness, 1 + recipe.brightness, generator, device),
        _uniform((n,), 1 - recipe.contrast, 1 + recipe.contrast, generator, device),
        _uniform((n,), 1 - recipe.saturation, 1 + recipe.saturation, generator, device),
        _uniform((n,), -recipe.hue, recipe.hue, generator, device),
    ], dim=1)
    jitter_order = torch.rand((n, 4), generator=generator, device=device).argsort(dim=1)
    grayscale = _bernoulli(n, recipe.grayscale_p, generator, device)
    blur = _bernoulli(n, recipe.blur_p, generator, device)
    blur_sigma = _uniform((n,), recipe.blur_sigma[0], recipe.blur_sigma[1], generator, device)
    solarize = _bernoulli(n, recipe.solarize_p, generator, device)
    return ViewParams(boxes, flip, jitter, jitter_factors, jitter_order, grayscale, blur, blur_sigma, solarize)


def apply_view_params(sources: torch.Tensor, params: ViewParams, recipe: ViewRecipe, out_size: int) -> torch.Tensor:
    """The deterministic part: view k of ``sources[k]``. (N, 3, H, W) -> (N, 3, out_size, out_size) in [0, 1].

    Steps whose probability in ``recipe`` is 0 are skipped (the blur kernel radius also comes from it).
    """
    views = resized_crop(sources, params.boxes, params.flip, out_size)
    if recipe.jitter_p > 0:
        views = apply_color_jitter(views, params.jitter_factors, params.jitter_order, params.jitter)
    if recipe.grayscale_p > 0:
        views = _where_rows(params.grayscale, rgb_to_grayscale(views, num_output_channels=3), views)
    if recipe.blur_p > 0:
        radius = math.ceil(3 * recipe.blur_sigma[1])
        views = _blur_rows(views, params.blur, params.blur_sigma, radius)
    if recipe.solarize_p > 0:
        # As torchvision's solarize (invert pixels >= threshold), on the chosen rows only.
        chosen = params.solarize.view(-1, 1, 1, 1)
        views = torch.where((views >= _SOLARIZE_THRESHOLD) & chosen, 1.0 - views, views)
    return views.clamp(0.0, 1.0)


def make_views(images: torch.Tensor, num_crops: int, recipe: ViewRecipe, generator: torch.Generator,
               out_size: int = 32) -> torch.Tensor:
    """All ``num_crops`` augmented views of every image, crop-major (METHOD.md 1.1).

    images: float (B, 3, H, W) in [0, 1] on any device; ``generator`` on the same device.
    Returns float (num_crops * B, 3, out_size, out_size) in [0, 1]; rows [c*B, (c+1)*B) are crop c
    of images 0..B-1. Every view draws its own crop, flip, jitter, grayscale, blur and solarize.
    On CPU the views are made in chunks of rows that stay in cache (same result, faster); on
    other devices in one pass.
    """
    if not images.is_floating_point() or images.dim() != 4 or images.shape[1] != 3:
        raise ValueError(f"images must be float (B, 3, H, W), got {tuple(images.shape)} {images.dtype}")
    if num_crops < 1:
        raise ValueError(f"num_crops must be >= 1, got {num_crops}")
    batch, _, height, width = images.shape
    n = num_crops * batch
    params = sample_view_params(n, height, width, recipe, generator, images.device)
    chunk = max(1, _CPU_CHUNK_PIXELS // (out_size * out_size)) if images.device.type == "cpu" else n
    # Crop-major: view r is a view of image r % B.
    source = torch.arange(n, device=images.device) % batch
    return torch.cat([
        apply_view_params(images[source[start : start + chunk]], params.rows(start, start + chunk), recipe, out_size)
        for start in range(0, n, chunk)
    ])
