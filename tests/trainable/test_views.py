"""Tests of trainable.views: batched multi-crop views (docs/METHOD.md 1.1, 3.3). Tiny, seeded, CPU."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest
import torch
import torchvision.transforms.v2 as T
import torchvision.transforms.v2.functional as TF

import trainable.views as views_module
from trainable.views import (
    BRIGHTNESS,
    CONTRAST,
    HUE,
    SATURATION,
    ViewRecipe,
    adjust_brightness,
    adjust_contrast,
    adjust_hue,
    adjust_saturation,
    apply_color_jitter,
    apply_view_params,
    gaussian_blur,
    make_views,
    recipe_for,
    resized_crop,
    sample_crop_boxes,
    sample_view_params,
)

# Everything off; the crop covers the whole image: make_views is then the identity.
OFF = ViewRecipe(scale=(1.0, 1.0), ratio=(1.0, 1.0), flip_p=0.0, jitter_p=0.0, grayscale_p=0.0, blur_p=0.0,
                 solarize_p=0.0)


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def rand_images(n: int, size: int = 8, seed: int = 0) -> torch.Tensor:
    return torch.rand(n, 3, size, size, generator=gen(seed))


# --- recipes -------------------------------------------------------------------------------------------
def test_recipes_follow_the_spec() -> None:
    emp_crop = recipe_for("emp", "crop")
    assert emp_crop.scale == (0.08, 1.0) and emp_crop.ratio == pytest.approx((3 / 4, 4 / 3))
    assert (emp_crop.hue, emp_crop.blur_p, emp_crop.solarize_p) == (0.2, 0.1, 0.1)
    assert (emp_crop.brightness, emp_crop.contrast, emp_crop.saturation, emp_crop.jitter_p) == (0.4, 0.4, 0.4, 0.8)
    assert (emp_crop.flip_p, emp_crop.grayscale_p, emp_crop.blur_sigma) == (0.5, 0.2, (0.1, 2.0))
    patch = recipe_for("emp", "patch")
    assert patch.scale == (0.25, 0.25) and patch.ratio == (1.0, 1.0)
    simclr = recipe_for("simclr", "crop")
    assert (simclr.hue, simclr.blur_p, simclr.solarize_p) == (0.1, 0.0, 0.0)
    with pytest.raises(ValueError, match="objective"):
        recipe_for("byol", "crop")
    with pytest.raises(ValueError, match="views"):
        recipe_for("emp", "tiles")
    with pytest.raises(ValueError, match="flip_p"):
        replace(OFF, flip_p=1.5)


# --- shape, layout, identity ---------------------------------------------------------------------------
def test_shape_dtype_device_range() -> None:
    images = rand_images(5, size=32)
    views = make_views(images, 3, recipe_for("emp", "crop"), gen(1))
    assert views.shape == (15, 3, 32, 32)
    assert views.dtype == images.dtype and views.device == images.device
    assert torch.isfinite(views).all() and views.min() >= 0 and views.max() <= 1
    assert make_views(rand_images(2, size=16), 4, recipe_for("simclr", "patch"), gen(), out_size=8).shape == (
        8, 3, 8, 8)


def test_crop_major_layout() -> None:
    # Image b takes values only in (b + 0.2, b + 0.8) / B; a bilinear crop never leaves that range.
    batch, crops = 4, 5
    noise = torch.rand(batch, 3, 32, 32, generator=gen())
    images = (torch.arange(batch).view(-1, 1, 1, 1) + 0.2 + 0.6 * noise) / batch
    recipe = replace(OFF, scale=(0.08, 1.0), ratio=(3 / 4, 4 / 3), flip_p=0.5)
    views = make_views(images, crops, recipe, gen(3)).view(crops, batch, -1)
    for b in range(batch):
        assert (views[:, b] > (b + 0.2) / batch - 1e-6).all() and (views[:, b] < (b + 0.8) / batch + 1e-6).all()
    # The crops of one image differ from each other (independent per view).
    assert not torch.allclose(views[0], views[1])


def test_identity_recipe_returns_the_input() -> None:
    images = rand_images(3, size=32)
    torch.testing.assert_close(make_views(images, 2, OFF, gen()), images.repeat(2, 1, 1, 1), atol=1e-6, rtol=0)
    odd = rand_images(2, size=28)  # Fashion-MNIST size: exact up to float rounding of the grid
    torch.testing.assert_close(make_views(odd, 1, OFF, gen(), out_size=28), odd, atol=1e-5, rtol=0)


def coordinate_images(batch: int, size: int = 32) -> torch.Tensor:
    """Channel 0 = column / (size - 1), channel 1 = row / (size - 1), channel 2 = 0.5."""
    ramp = torch.arange(size, dtype=torch.float32) / (size - 1)
    image = torch.stack([ramp.expand(size, size), ramp[:, None].expand(size, size), torch.full((size, size), 0.5)])
    return image.expand(batch, 3, size, size).clone()


def test_patch_views_are_a_quarter_of_the_image() -> None:
    recipe = replace(recipe_for("emp", "patch"), flip_p=0.0, jitter_p=0.0, grayscale_p=0.0, blur_p=0.0,
                     solarize_p=0.0)
    views = make_views(coordinate_images(6), 4, recipe, gen(5))  # (24, 3, 32, 32)
    cols = views[:, 0] * 31
    rows = views[:, 1] * 31
    # The sampled region spans exactly 16 columns and 16 rows (edge samples sit on the crop's edge pixels).
    torch.testing.assert_close(cols.amax(dim=(1, 2)) - cols.amin(dim=(1, 2)), torch.full((24,), 15.0))
    torch.testing.assert_close(rows.amax(dim=(1, 2)) - rows.amin(dim=(1, 2)), torch.full((24,), 15.0))
    assert cols.amin() >= -1e-4 and cols.amax() <= 31 + 1e-4
    # Not always the same patch.
    assert len(torch.unique(cols.amin(dim=(1, 2)).round())) > 1
    boxes = sample_crop_boxes(500, 32, 32, recipe.scale, recipe.ratio, gen())
    assert (boxes[:, 2:] == 16).all()


# --- crop sampling -------------------------------------------------------------------------------------
def test_crop_boxes_match_torchvision_distribution() -> None:
    n, size = 4000, 32
    scale, ratio = (0.08, 1.0), (3 / 4, 4 / 3)
    boxes = sample_crop_boxes(n, size, size, scale, ratio, gen(7)).double()
    top, left, h, w = boxes.unbind(1)
    assert (top >= 0).all() and (left >= 0).all() and (top + h <= size).all() and (left + w <= size).all()
    area, aspect = h * w / size**2, w / h
    # Within the requested ranges up to the rounding of w and h to whole pixels (a 9x9 crop is 0.079).
    assert area.min() >= 0.07 and area.max() <= 1.0 and area.min() < 0.1 and area.max() > 0.95
    assert aspect.min() >= 0.75 / 1.1 and aspect.max() <= 4 / 3 * 1.1
    assert aspect.min() < 0.8 and aspect.max() > 1.25
    # Same distribution as torchvision's RandomResizedCrop.get_params (an independent reference).
    torch.manual_seed(0)
    image = torch.zeros(3, size, size)
    ref = torch.tensor([T.RandomResizedCrop.get_params(image, list(scale), list(ratio)) for _ in range(n)]).double()
    ref_area, ref_aspect = ref[:, 2] * ref[:, 3] / size**2, ref[:, 3] / ref[:, 2]
    assert abs(area.mean() - ref_area.mean()) < 0.02
    assert abs(area.std() - ref_area.std()) < 0.02
    assert abs(aspect.log().mean() - ref_aspect.log().mean()) < 0.02
    assert abs((top + h / 2).mean() - (ref[:, 0] + ref[:, 2] / 2).mean()) < 0.5


def test_crop_boxes_central_fallback_like_torchvision() -> None:
    # No candidate fits (ratio >= 2 at full area): the central crop with the ratio clamped, as torchvision.
    image = torch.zeros(3, 32, 32)
    for ratio in ((2.0, 3.0), (0.25, 0.4)):
        boxes = sample_crop_boxes(10, 32, 32, (1.0, 1.0), ratio, gen())
        expected = torch.tensor(T.RandomResizedCrop.get_params(image, [1.0, 1.0], list(ratio)))
        assert (boxes == expected).all()


def test_resized_crop_matches_torchvision() -> None:
    images = rand_images(6, size=32, seed=2)
    boxes = sample_crop_boxes(6, 32, 32, (0.08, 1.0), (3 / 4, 4 / 3), gen(4))
    boxes[0] = torch.tensor([0, 0, 32, 32])
    boxes[1] = torch.tensor([3, 5, 20, 9])
    flips = torch.tensor([False, True, False, True, True, False])
    out = resized_crop(images, boxes, flips, 32)
    for k in range(6):
        ref = TF.resized_crop(images[k], *boxes[k].tolist(), size=[32, 32], antialias=True)
        ref = TF.horizontal_flip(ref) if flips[k] else ref
        torch.testing.assert_close(out[k], ref, atol=1e-5, rtol=0)


# --- probabilities (seeded, generous tolerances) -------------------------------------------------------
CROPS, BATCH = 20, 100  # 2000 views of 8x8 images


def applied_fraction(recipe: ViewRecipe, images: torch.Tensor, detect) -> tuple[float, torch.Tensor]:
    views = make_views(images, CROPS, recipe, gen(11), out_size=images.shape[-1])
    hits = detect(views, images.repeat(CROPS, 1, 1, 1))
    return hits.float().mean().item(), hits.view(CROPS, BATCH)


def changed(views: torch.Tensor, originals: torch.Tensor) -> torch.Tensor:
    return (views - originals).abs().amax(dim=(1, 2, 3)) > 1e-4


def check_independent(hits: torch.Tensor, p: float) -> None:
    # Crops of one image decide independently: crop 0 and crop 1 agree at rate p^2 + (1-p)^2.
    agree = (hits[0] == hits[1]).float().mean().item()
    assert abs(agree - (p * p + (1 - p) ** 2)) < 0.15


def test_flip_probability() -> None:
    images = coordinate_images(BATCH, size=8)
    frac, hits = applied_fraction(replace(OFF, flip_p=0.5), images, lambda v, o: v[:, 0, 0, 0] > v[:, 0, 0, -1])
    assert abs(frac - 0.5) < 0.06
    check_independent(hits, 0.5)


def test_grayscale_probability() -> None:
    images = rand_images(BATCH)
    def is_gray(v: torch.Tensor, o: torch.Tensor) -> torch.Tensor:
        return (v[:, 0] == v[:, 1]).all(dim=(1, 2)) & (v[:, 1] == v[:, 2]).all(dim=(1, 2))

    frac, hits = applied_fraction(replace(OFF, grayscale_p=0.2), images, is_gray)
    assert abs(frac - 0.2) < 0.05
    check_independent(hits, 0.2)


def test_solarize_probability() -> None:
    images = torch.full((BATCH, 3, 8, 8), 0.75)  # solarized: 0.25
    frac, _ = applied_fraction(replace(OFF, solarize_p=0.1), images,
                               lambda v, o: (v - 0.25).abs().amax((1, 2, 3)) < 1e-5)
    assert abs(frac - 0.1) < 0.04


def test_blur_probability() -> None:
    checker = ((torch.arange(8)[:, None] + torch.arange(8)) % 2).float()
    images = checker.expand(BATCH, 3, 8, 8).clone()
    # sigma >= 1 so every blur is visible (sigma 0.1 changes nothing measurable).
    frac, _ = applied_fraction(replace(OFF, blur_p=0.1, blur_sigma=(1.0, 2.0)), images, changed)
    assert abs(frac - 0.1) < 0.04


def test_jitter_probability() -> None:
    images = 0.2 + 0.6 * rand_images(BATCH)
    frac, hits = applied_fraction(replace(OFF, jitter_p=0.8), images, changed)
    assert abs(frac - 0.8) < 0.05
    check_independent(hits, 0.8)


# --- reproducibility -----------------------------------------------------------------------------------
def test_same_seed_same_views_other_seed_other_views() -> None:
    images = rand_images(4, size=32)
    recipe = recipe_for("emp", "crop")
    first = make_views(images, 3, recipe, gen(42))
    assert torch.equal(first, make_views(images, 3, recipe, gen(42)))
    assert not torch.allclose(first, make_views(images, 3, recipe, gen(43)))


def test_result_does_not_depend_on_cpu_chunking(monkeypatch: pytest.MonkeyPatch) -> None:
    images = rand_images(5, size=16)
    recipe = recipe_for("emp", "crop")
    whole = make_views(images, 4, recipe, gen(8), out_size=16)
    monkeypatch.setattr(views_module, "_CPU_CHUNK_PIXELS", 3 * 16 * 16)  # chunks of 3 views
    assert torch.equal(whole, make_views(images, 4, recipe, gen(8), out_size=16))
    # make_views = draw the parameters of the C*B views, then apply them to the repeated batch.
    params = sample_view_params(20, 16, 16, recipe, gen(8))
    assert torch.equal(whole, apply_view_params(images.repeat(4, 1, 1, 1), params, recipe, 16))


def test_float64_images() -> None:
    views = make_views(rand_images(2, size=16).double(), 3, recipe_for("emp", "crop"), gen(), out_size=16)
    assert views.dtype == torch.float64 and views.min() >= 0 and views.max() <= 1


# --- per-sample ops against torchvision ----------------------------------------------------------------
@pytest.mark.parametrize(
    ("ours", "reference", "factors"),
    [
        (adjust_brightness, TF.adjust_brightness, [0.6, 1.0, 1.4, 0.9, 1.2, 0.75]),
        (adjust_contrast, TF.adjust_contrast, [0.6, 1.0, 1.4, 0.9, 1.2, 0.75]),
        (adjust_saturation, TF.adjust_saturation, [0.6, 1.0, 1.4, 0.9, 1.2, 0.75]),
        (adjust_hue, TF.adjust_hue, [-0.2, 0.0, 0.2, 0.05, -0.13, 0.5]),
    ],
)
def test_adjust_ops_match_torchvision(ours, reference, factors) -> None:
    images = rand_images(6, seed=3)
    images[1, :, :2] = images[1, 0, :2]  # some gray pixels (zero saturation)
    images[2, :, 0, 0] = 0.0  # a black pixel
    images[3, 1, 1, :] = images[3, 0, 1, :]  # ties between the max channels
    out = ours(images, torch.tensor(factors))
    for k, f in enumerate(factors):
        torch.testing.assert_close(out[k], reference(images[k], f), atol=1e-5, rtol=0)


def test_color_jitter_order_matches_sequential_torchvision() -> None:
    images = rand_images(5, seed=4)
    factors = torch.tensor([[1.3, 0.7, 1.2, 0.1], [0.6, 1.4, 0.8, -0.2], [1.1, 1.2, 0.6, 0.15],
                            [0.9, 0.8, 1.3, -0.05], [1.4, 1.4, 1.4, 0.2]])
    order = torch.tensor([[0, 1, 2, 3], [3, 2, 1, 0], [1, 3, 0, 2], [2, 0, 3, 1], [0, 1, 2, 3]])
    apply = torch.tensor([True, True, True, True, False])
    out = apply_color_jitter(images, factors, order, apply)
    ops = {BRIGHTNESS: TF.adjust_brightness, CONTRAST: TF.adjust_contrast, SATURATION: TF.adjust_saturation,
           HUE: TF.adjust_hue}
    for k in range(5):
        ref = images[k]
        if apply[k]:
            for op in order[k].tolist():
                ref = ops[op](ref, factors[k, op].item())
        torch.testing.assert_close(out[k], ref, atol=1e-5, rtol=0)


def test_grayscale_and_solarize_match_torchvision() -> None:
    images = rand_images(4, size=16, seed=5)
    gray = make_views(images, 1, replace(OFF, grayscale_p=1.0), gen(), out_size=16)
    torch.testing.assert_close(gray, TF.rgb_to_grayscale(images, num_output_channels=3), atol=1e-6, rtol=0)
    solar = make_views(images, 1, replace(OFF, solarize_p=1.0), gen(), out_size=16)
    torch.testing.assert_close(solar, TF.solarize(images, threshold=0.5), atol=1e-6, rtol=0)
    # PIL's threshold 128: 128/255 is inverted, 127/255 is not.
    edge = torch.tensor([127 / 255, 128 / 255]).view(1, 1, 1, 2).expand(1, 3, 2, 2)
    solar = make_views(edge.contiguous(), 1, replace(OFF, solarize_p=1.0), gen(), out_size=2)
    torch.testing.assert_close(solar[0, 0, 0], torch.tensor([127 / 255, 127 / 255]))


def test_gaussian_blur_matches_torchvision_inside() -> None:
    images = rand_images(3, size=24, seed=6)
    sigmas = torch.tensor([0.1, 1.0, 2.0])
    radius = math.ceil(3 * 2.0)
    out = gaussian_blur(images, sigmas, radius)
    for k, s in enumerate(sigmas.tolist()):
        ref = TF.gaussian_blur(images[k], [2 * radius + 1] * 2, [s, s])
        # Padding differs (edge-replicate here, reflect in torchvision): compare away from the border.
        inner = (slice(None), slice(radius, -radius), slice(radius, -radius))
        torch.testing.assert_close(out[k][inner], ref[inner], atol=1e-5, rtol=0)
    assert out.min() >= 0 and out.max() <= 1


def test_blur_of_chosen_rows_only_equals_blur_of_all_rows_then_select() -> None:
    """The CPU fast path (convolve only the chosen rows, BENCHMARKS.md item 2) changes no value."""
    views = rand_images(64, size=32, seed=11)
    chosen = torch.rand(64, generator=gen(12)) < 0.1
    chosen[3] = True  # at least one row
    sigmas = 0.1 + 1.9 * torch.rand(64, generator=gen(13))
    radius = math.ceil(3 * 2.0)
    reference = torch.where(chosen.view(-1, 1, 1, 1), gaussian_blur(views, sigmas, radius), views)
    assert torch.equal(views_module._blur_rows(views.clone(), chosen, sigmas, radius), reference)
    none = torch.zeros(64, dtype=torch.bool)
    assert torch.equal(views_module._blur_rows(views.clone(), none, sigmas, radius), views)
    # The whole pipeline, with blur on every view and on none, against the select-after-blur form.
    images = rand_images(6, size=32, seed=14)
    for blur_p in (0.1, 1.0):
        recipe = replace(recipe_for("emp", "crop"), blur_p=blur_p)
        params = sample_view_params(24, 32, 32, recipe, gen(15))
        fast = apply_view_params(images.repeat(4, 1, 1, 1), params, recipe, 32)
        # rebuild the reference: the same steps, then blur all rows and select (solarize after blur)
        unclamped = views_module.resized_crop(images.repeat(4, 1, 1, 1), params.boxes, params.flip, 32)
        unclamped = apply_color_jitter(unclamped, params.jitter_factors, params.jitter_order, params.jitter)
        unclamped = torch.where(params.grayscale.view(-1, 1, 1, 1),
                                TF.rgb_to_grayscale(unclamped, num_output_channels=3), unclamped)
        blurred = torch.where(params.blur.view(-1, 1, 1, 1), gaussian_blur(unclamped, params.blur_sigma, radius),
                              unclamped)
        chosen_s = params.solarize.view(-1, 1, 1, 1)
        reference = torch.where((blurred >= 0.5) & chosen_s, 1.0 - blurred, blurred).clamp(0.0, 1.0)
        assert torch.equal(fast, reference)


@pytest.mark.parametrize("p_apply", [0.0, 0.8, 1.0])
def test_color_jitter_on_chosen_rows_equals_the_all_rows_form(p_apply: float) -> None:
    """The CPU fast path (each op on the rows that take it, BENCHMARKS.md item 2) changes no value."""
    recipe = recipe_for("emp", "crop")
    for seed in range(3):
        params = sample_view_params(96, 32, 32, replace(recipe, jitter_p=p_apply), gen(seed))
        images = rand_images(96, size=32, seed=seed + 20)
        images[:4] = images[:4] * 1.2 - 0.1  # some pixels outside [0, 1]: the neutral blends clamp them
        before = images.clone()
        hue_step = (params.jitter_order == HUE).int().argmax(dim=1)
        args = (images, params.jitter_factors, params.jitter_order, params.jitter, hue_step)
        fast = views_module._apply_color_jitter_rows(*args)
        assert torch.equal(images, before)  # the input is not modified
        assert torch.equal(fast, views_module._apply_color_jitter_where(*args))
        assert torch.equal(fast, apply_color_jitter(images, params.jitter_factors, params.jitter_order, params.jitter))


def test_rgb_to_grayscale_is_torchvisions() -> None:
    """The local grayscale (no torchvision import in the trainable) equals torchvision's, bit for bit."""
    for dtype in (torch.float32, torch.float64):
        images = rand_images(5, size=8, seed=30).to(dtype)
        for channels in (1, 3):
            ours = views_module.rgb_to_grayscale(images, num_output_channels=channels)
            assert torch.equal(ours, TF.rgb_to_grayscale(images, num_output_channels=channels))
            assert ours.shape == (5, channels, 8, 8) and ours.dtype == dtype
