"""Datasets by name, as uint8 image tensors, and seeded minibatch iteration.

Names (``trainable.config.DATASETS``):

- ``cifar10``, ``cifar100``: a local copy in the standard python-pickle layout
  (``cifar-10-batches-py/`` or ``cifar-100-python/``), read with a restricted unpickler (numpy arrays and plain data only, so a crafted
  file cannot run code). Nothing is ever downloaded.
- ``fashion-mnist``: a directory of the four standard idx files (gzipped or not); by default the
  Debian package ``dataset-fashion-mnist``'s ``/usr/share/datasets/fashion-mnist``.
- ``embedded``: a small real sample of Fashion-MNIST shipped in the package
  (``trainable/assets/fashion_mnist_sample.npz``: 500 train and 100 test images per class).
- ``synthetic``: class-structured random images for unit tests only; no other name falls back to it.

Every dataset is returned as an :class:`ImageDataset` holding ``(N, 3, 32, 32)`` uint8 images:
grey 28x28 images are zero-padded by 2 pixels on each side and repeated to 3 channels. Pixels become
float32 in [0, 1] only in :func:`iterate_minibatches`, on the training device. Problems with the
files raise :class:`DatasetError` with a one-line message naming the path and the files expected.
"""

from __future__ import annotations

import gzip
import math
import numbers
import pickle
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np
import torch

from orchestrator.layout import UserError, first_line

SPLITS = ("train", "test")

FASHION_MNIST_DIR = "/usr/share/datasets/fashion-mnist"
FASHION_MNIST_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
EMBEDDED_PATH = Path(__file__).resolve().parent / "assets" / "fashion_mnist_sample.npz"
SYNTHETIC_SIZES = {"train": 512, "test": 128}
SYNTHETIC_CLASSES = 10

# Standard python-pickle layouts: name -> (folder, train files, test files, num classes).
_CIFAR_LAYOUTS: dict[str, tuple[str, tuple[str, ...], tuple[str, ...], int]] = {
    "cifar10": ("cifar-10-batches-py", tuple(f"data_batch_{i}" for i in range(1, 6)), ("test_batch",), 10),
    "cifar100": ("cifar-100-python", ("train",), ("test",), 100),
}

_IDX_UBYTE = 0x08  # idx type code of unsigned bytes


class DatasetError(UserError):
    """A dataset that cannot be loaded; the message is one line naming the path and the files expected."""


@dataclass
class ImageDataset:
    """A labelled image set held in memory.

    images: uint8 ``(N, 3, 32, 32)``; labels: int64 ``(N,)`` in ``[0, num_classes)``.
    """

    images: torch.Tensor
    labels: torch.Tensor
    num_classes: int
    name: str

    def __len__(self) -> int:
        return int(self.labels.shape[0])


# --- public entry point ----------------------------------------------------------------------------


@dataclass(frozen=True)
class DatasetKind:
    """A named dataset: how its files are found and read (the registry `DATASETS`)."""

    name: str
    num_classes: int
    # (split, data_dir) -> raw uint8 images (N, 28, 28) or (N, 32, 32, 3) and labels (N,); None: generated
    read: Callable[[str, str | None], tuple[np.ndarray, np.ndarray]] | None
    locate: Callable[[str | None], None] | None  # raises DatasetError when read() would not find the files
    source: str  # one line for users: where the data comes from
    needs_data_dir: bool = False  # no default location: the user must give data_dir

    def problem(self, data_dir: str | None) -> str | None:
        """Why ``read`` would not find this dataset's files in ``data_dir`` (None: they are there, or the
        location is a URI that is not checked); checks that files exist without reading them."""
        if self.locate is None or (isinstance(data_dir, str) and "://" in data_dir):
            return None
        try:
            self.locate(data_dir)
        except DatasetError as exc:
            return str(exc)
        except (OSError, ValueError) as exc:  # a path the OS refuses (too long, NUL byte, ...)
            return f"{self.name}: data_dir {data_dir!r} cannot be used ({first_line(exc)})"
        return None


def data_problem(name: str, data_dir: str | None) -> str | None:
    """`DatasetKind.problem` of dataset ``name`` (None for a name that is not a dataset: the config says so)."""
    kind = DATASETS.get(name)
    return None if kind is None else kind.problem(data_dir)


def load_dataset(
    name: str, split: str, data_dir: str | None = None, limit: int = 0, seed: int = 0
) -> ImageDataset:
    """Load ``split`` ("train" or "test") of dataset ``name`` as an :class:`ImageDataset`.

    ``limit`` > 0 keeps a deterministic class-balanced subset of that many images, chosen with
    ``seed`` (see :func:`balanced_indices`); 0 keeps the whole split. For ``synthetic`` the limit
    is the number of images generated. ``data_dir`` is ignored by ``embedded`` and ``synthetic``.
    """
    if name not in DATASETS:
        raise DatasetError(f"dataset: unknown name {name!r}; allowed: {', '.join(DATASETS)}")
    if split not in SPLITS:
        raise DatasetError(f"{name}: unknown split {split!r}; allowed: {', '.join(SPLITS)}")
    if isinstance(limit, bool) or not isinstance(limit, numbers.Integral) or limit < 0:
        raise DatasetError(f"{name}: limit must be an integer >= 0 (0 = the whole split), got {limit!r}")
    limit = int(limit)

    kind = DATASETS[name]
    if kind.read is None:  # synthetic: generated, `limit` images
        return make_synthetic(split, limit or SYNTHETIC_SIZES[split], seed)
    images, labels = kind.read(split, data_dir)
    if limit:
        if limit > len(labels):
            raise DatasetError(f"{name} {split}: limit {limit} is larger than the {len(labels)} images "
                               f"in the split")
        keep = balanced_indices(labels, limit, seed)
        images, labels = images[keep], labels[keep]
    if images.ndim == 3:
        images = grey_to_rgb32(images)
    else:
        images = np.ascontiguousarray(images.transpose(0, 3, 1, 2))  # (N, 32, 32, 3) HWC -> (N, 3, 32, 32)
    return ImageDataset(
        images=torch.from_numpy(images),
        labels=torch.from_numpy(labels.astype(np.int64)),
        num_classes=kind.num_classes,
        name=name,
    )


# --- subsets and conversions -----------------------------------------------------------------------


def balanced_indices(labels: np.ndarray, limit: int, seed: int) -> np.ndarray:
    """Sorted indices of a class-balanced subset of ``limit`` items of ``labels`` (shape ``(N,)``).

    Each class gets ``limit // K`` items (K = classes present); the remainder goes one each to
    classes drawn with ``seed``. A class with too few items gives all it has and the rest is shared
    among the others. Within a class the items are a seeded random choice. Same inputs, same output.
    """
    labels = np.asarray(labels)
    if not 0 <= limit <= len(labels):
        raise DatasetError(f"limit {limit} is outside [0, {len(labels)}], the number of images in the split")
    rng = np.random.default_rng(seed)
    classes, counts = np.unique(labels, return_counts=True)
    quota = np.zeros(len(classes), dtype=np.int64)
    remaining = limit
    open_classes = list(range(len(classes)))
    while remaining > 0:  # water-filling: equal shares, capped by what each class holds
        share, extra = divmod(remaining, len(open_classes))
        lucky = set(rng.choice(len(open_classes), size=extra, replace=False).tolist()) if extra else set()
        still_open = []
        for pos, c in enumerate(open_classes):
            want = share + (1 if pos in lucky else 0)
            take = min(want, counts[c] - quota[c])
            quota[c] += take
            remaining -= take
            if quota[c] < counts[c]:
                still_open.append(c)
        open_classes = still_open
    chosen = []
    for c, cls in enumerate(classes):
        members = np.flatnonzero(labels == cls)
        chosen.append(members[rng.permutation(len(members))[: quota[c]]])
    return np.sort(np.concatenate(chosen)) if chosen else np.zeros(0, dtype=np.int64)


def grey_to_rgb32(images: np.ndarray) -> np.ndarray:
    """uint8 ``(N, 28, 28)`` -> uint8 ``(N, 3, 32, 32)``: zero-pad 2 pixels per side, repeat to 3 channels."""
    n, h, w = images.shape
    if h > 32 or w > 32:
        raise DatasetError(f"grey images of {h}x{w} do not fit in 32x32")
    top, left = (32 - h) // 2, (32 - w) // 2
    out = np.zeros((n, 3, 32, 32), dtype=np.uint8)
    out[:, :, top : top + h, left : left + w] = images[:, None]
    return out


# --- minibatches -----------------------------------------------------------------------------------


def num_minibatches(n: int, batch_size: int, drop_last: bool = True) -> int:
    """How many minibatches :func:`iterate_minibatches` yields for ``n`` items."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    return n // batch_size if drop_last else math.ceil(n / batch_size)


def iterate_minibatches(
    ds: ImageDataset,
    batch_size: int,
    generator: torch.Generator,
    device: torch.device | str = "cpu",
    drop_last: bool = True,
    shuffle: bool = True,
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """One epoch of ``(x, y)``: x float32 ``(B, 3, 32, 32)`` in [0, 1], y int64 ``(B,)``, both on ``device``.

    The order is a permutation drawn from ``generator`` (a CPU ``torch.Generator``) and nothing
    else, drawn when this function is called (not at the first ``next``), so the same generator
    state gives the same epoch. ``drop_last`` drops a final batch smaller than ``batch_size``.
    """
    if generator.device.type != "cpu":
        raise ValueError(f"iterate_minibatches needs a CPU torch.Generator, got one on {generator.device}")
    n = len(ds)
    count = num_minibatches(n, batch_size, drop_last)
    order = torch.randperm(n, generator=generator) if shuffle else torch.arange(n)
    device = torch.device(device)

    def batches() -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        for b in range(count):
            idx = order[b * batch_size : (b + 1) * batch_size]
            x = ds.images[idx].to(device).float().div_(255.0)
            y = ds.labels[idx].to(device)
            yield x, y

    return batches()


# --- fashion-mnist idx files -----------------------------------------------------------------------


def read_idx(path: str | Path, ndim: int) -> np.ndarray:
    """Read an idx file of unsigned bytes (gzipped or not) with ``ndim`` dimensions, as uint8.

    Validates the magic number (``0x0000 08 ndim``) and that the payload size matches the header.
    """
    path = Path(path)
    try:
        with open(path, "rb") as f:
            raw = f.read()
        if raw[:2] == b"\x1f\x8b":
            raw = gzip.decompress(raw)
    except (OSError, EOFError, zlib.error) as exc:
        raise DatasetError(f"idx file {path}: cannot be read ({_one_line(exc)})") from None
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DatasetError(f"idx file {path}: truncated header ({len(raw)} bytes)")
    zero, dtype, dims = int.from_bytes(raw[:2], "big"), raw[2], raw[3]
    if zero != 0 or dtype != _IDX_UBYTE or dims != ndim:
        raise DatasetError(f"idx file {path}: bad magic number 0x{raw[:4].hex()}, expected "
                           f"0x000008{ndim:02x} (unsigned bytes, {ndim} dimensions)")
    shape = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    size = int(np.prod(shape, dtype=np.int64))
    if len(raw) - header != size:
        raise DatasetError(f"idx file {path}: header says shape {shape} ({size} bytes) but the file holds "
                           f"{len(raw) - header} bytes after the header (truncated or corrupt)")
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(shape).copy()


def fashion_mnist_paths(directory: str | Path, split: str) -> tuple[Path, Path]:
    """The (images, labels) idx files of ``split`` in ``directory``: ``.gz`` or uncompressed."""
    directory = Path(directory).expanduser()
    expected = _fashion_expected()
    if not directory.is_dir():
        raise DatasetError(f"fashion-mnist: data directory {directory} does not exist; expected it to hold "
                           f"{expected}")
    found = []
    for stem in FASHION_MNIST_FILES[split]:
        candidates = [directory / f"{stem}.gz", directory / stem]
        hit = next((p for p in candidates if p.is_file()), None)
        if hit is None:
            raise DatasetError(f"fashion-mnist: {directory} has no {stem}.gz (or {stem}); expected {expected}")
        found.append(hit)
    return found[0], found[1]


def read_fashion_mnist(directory: str | Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    """Images uint8 ``(N, 28, 28)`` and labels uint8 ``(N,)`` of ``split`` from a directory of idx files."""
    image_path, label_path = fashion_mnist_paths(directory, split)
    images = read_idx(image_path, 3)
    labels = read_idx(label_path, 1)
    if images.shape[1:] != (28, 28):
        raise DatasetError(f"idx file {image_path}: images are {images.shape[1]}x{images.shape[2]}, expected 28x28")
    if len(images) != len(labels):
        raise DatasetError(f"fashion-mnist: {image_path} holds {len(images)} images but {label_path} "
                           f"holds {len(labels)} labels")
    if labels.size and labels.max() >= 10:
        raise DatasetError(f"idx file {label_path}: label {int(labels.max())} is outside 0..9")
    return images, labels


def _fashion_expected() -> str:
    names = [f"{stem}.gz" for pair in FASHION_MNIST_FILES.values() for stem in pair]
    return ", ".join(names) + " (gzipped or not)"


# --- embedded sample -------------------------------------------------------------------------------


def _read_embedded(split: str) -> tuple[np.ndarray, np.ndarray]:
    """The shipped Fashion-MNIST sample: uint8 ``(N, 28, 28)`` images and uint8 ``(N,)`` labels."""
    path = EMBEDDED_PATH
    keys = (f"{split}_images", f"{split}_labels")
    if not path.is_file():
        raise DatasetError(f"embedded: {path} is missing; expected an npz with train_images, train_labels, "
                           f"test_images, test_labels (rebuild with scripts/make_embedded_dataset.py)")
    try:
        with np.load(path, allow_pickle=False) as npz:
            images, labels = npz[keys[0]], npz[keys[1]]
    except (OSError, KeyError, ValueError, zlib.error) as exc:
        raise DatasetError(f"embedded: {path} cannot be read ({_one_line(exc)}); expected keys "
                           f"train_images, train_labels, test_images, test_labels") from None
    if images.dtype != np.uint8 or images.ndim != 3 or images.shape[1:] != (28, 28) or len(images) != len(labels):
        raise DatasetError(f"embedded: {path} holds {keys[0]} of shape {images.shape} ({images.dtype}) "
                           f"and {len(labels)} labels; expected uint8 (N, 28, 28) and N labels")
    return images, labels


# --- CIFAR -----------------------------------------------------------------------------------------


def _cifar_folder(name: str, data_dir: str | None) -> Path:
    """The ``cifar-10-batches-py`` / ``cifar-100-python`` folder: inside ``data_dir`` or ``data_dir`` itself."""
    folder, train_files, test_files, _ = _CIFAR_LAYOUTS[name]
    expected = _cifar_expected(name)
    if data_dir is None:
        raise DatasetError(f"{name}: no data_dir given; set data_dir to a directory holding {folder}/ "
                           f"({expected}); nothing is downloaded")
    root = Path(data_dir).expanduser()
    if root.name == folder and root.is_dir():
        return root
    if (root / folder).is_dir():
        return root / folder
    if root.is_dir() and all((root / f).is_file() for f in train_files + test_files):
        return root  # the batches directly in data_dir, under another folder name
    where = f"{root} does not exist" if not root.is_dir() else f"{root} has no {folder}/"
    raise DatasetError(f"{name}: {where}; expected {root / folder} holding {expected} "
                       f"(the python version of the dataset; nothing is downloaded)")


def _cifar_expected(name: str) -> str:
    _, train_files, test_files, _ = _CIFAR_LAYOUTS[name]
    if len(train_files) > 1:
        return f"{train_files[0]}..{train_files[-1][-1]}, {', '.join(test_files)}"
    return ", ".join(train_files + test_files)


# The only globals a CIFAR batch may name: numpy's array and dtype reconstructors (any numpy version,
# pickle protocols 2-5) and the text-to-bytes codec protocol 2 uses for raw bytes. Anything else
# (os.system, builtins.exec, ...) is refused before it can run.
_SAFE_PICKLE_GLOBALS = frozenset({
    ("_codecs", "encode"),
    ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
    ("numpy.core.numeric", "_frombuffer"), ("numpy._core.numeric", "_frombuffer"),
    ("numpy", "ndarray"), ("numpy", "dtype"),
})


class _ArraysOnlyUnpickler(pickle.Unpickler):
    """A pickle reader for data files: dicts, lists, bytes, numbers and numpy arrays; no other objects."""

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _SAFE_PICKLE_GLOBALS:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refused to load {module}.{name} (only numpy arrays are allowed in a batch)")


def _read_cifar_batch(path: Path) -> dict:
    """One python-pickle CIFAR batch as a dict with str keys, read without running any pickled code."""
    with open(path, "rb") as fh:
        entry = _ArraysOnlyUnpickler(fh, encoding="latin1").load()
    if not isinstance(entry, dict):
        raise ValueError(f"{path.name} holds a {type(entry).__name__}, not a dict")
    return {k.decode("latin1") if isinstance(k, bytes) else k: v for k, v in entry.items()}


def _read_cifar(name: str, split: str, data_dir: str | None) -> tuple[np.ndarray, np.ndarray]:
    """Images uint8 ``(N, 32, 32, 3)`` (HWC) and labels int64 ``(N,)`` from the python-pickle batches.

    Read with a restricted unpickler (numpy arrays and plain data only), so a crafted batch file
    cannot run code; same layout as torchvision's reader (``data`` (N, 3072) CHW rows, ``labels`` or
    ``fine_labels``).
    """
    folder = _cifar_folder(name, data_dir)
    _, train_files, test_files, num_classes = _CIFAR_LAYOUTS[name]
    wanted = train_files if split == "train" else test_files
    missing = [f for f in wanted if not (folder / f).is_file()]
    if missing:
        raise DatasetError(f"{name}: {folder} is missing {', '.join(missing)}; expected {_cifar_expected(name)}")
    label_key = "labels" if name == "cifar10" else "fine_labels"
    try:
        batches = [_read_cifar_batch(folder / f) for f in wanted]
        images = np.concatenate([np.asarray(b["data"], dtype=np.uint8) for b in batches])
        images = images.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
        labels = np.concatenate([np.asarray(b[label_key], dtype=np.int64) for b in batches])
    except Exception as exc:  # refused globals, truncated files, missing keys, a bad layout inside a batch
        raise DatasetError(f"{name}: cannot read {', '.join(str(folder / f) for f in wanted)} "
                           f"({_one_line(exc)}); expected the python-pickle batches {_cifar_expected(name)}") from None
    if images.shape[1:] != (32, 32, 3) or len(images) != len(labels):
        raise DatasetError(f"{name}: {folder} holds images of shape {images.shape} and {len(labels)} labels; "
                           f"expected (N, 32, 32, 3) and N labels")
    if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
        raise DatasetError(f"{name}: {folder} has labels outside 0..{num_classes - 1}")
    return images, labels


# --- synthetic (tests only) ------------------------------------------------------------------------


def make_synthetic(split: str, n: int, seed: int = 0) -> ImageDataset:
    """Class-structured random images, FOR UNIT TESTS ONLY; never a stand-in for real data.

    10 classes, each a fixed colour and stripe texture (the same in both splits, independent of
    ``seed``) plus seeded per-image noise and brightness, so a linear probe can beat chance.
    Labels are balanced (``n // 10`` or one more per class) in seeded order. Returns ``n`` images,
    uint8 ``(n, 3, 32, 32)``.
    """
    if split not in SPLITS:
        raise DatasetError(f"synthetic: unknown split {split!r}; allowed: {', '.join(SPLITS)}")
    k = SYNTHETIC_CLASSES
    proto = _synthetic_prototypes()  # float (K, 3, 32, 32) in [0, 1]
    g = torch.Generator().manual_seed(int(seed) * 2 + (0 if split == "train" else 1))
    labels = (torch.arange(n) % k)[torch.randperm(n, generator=g)]
    brightness = 0.8 + 0.4 * torch.rand(n, 1, 1, 1, generator=g)
    noise = 0.15 * torch.randn(n, 3, 32, 32, generator=g)
    images = (proto[labels] * brightness + noise).clamp_(0, 1).mul_(255).round_().to(torch.uint8)
    return ImageDataset(images=images, labels=labels.to(torch.int64), num_classes=k, name="synthetic")


def _synthetic_prototypes() -> torch.Tensor:
    """One float ``(3, 32, 32)`` pattern per class: a distinct colour times a class-specific stripe."""
    k = SYNTHETIC_CLASSES
    hue = torch.arange(k, dtype=torch.float32) / k
    angles = 2 * math.pi * (hue[:, None] + torch.tensor([0.0, 1 / 3, 2 / 3]))
    colour = 0.5 + 0.4 * torch.cos(angles)  # (K, 3)
    yy, xx = torch.meshgrid(torch.arange(32.0), torch.arange(32.0), indexing="ij")
    protos = []
    for c in range(k):
        theta = math.pi * c / k
        freq = 2 * math.pi * (2 + c % 3) / 32
        stripes = 0.5 + 0.5 * torch.sin(freq * (xx * math.cos(theta) + yy * math.sin(theta)))
        protos.append(colour[c][:, None, None] * (0.4 + 0.6 * stripes))
    return torch.stack(protos)


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return f"{type(exc).__name__}: {text}" if not text.startswith(type(exc).__name__) else text


# --- the registry ----------------------------------------------------------------------------------


def _locate_fashion_mnist(data_dir: str | None) -> None:
    for split in SPLITS:
        fashion_mnist_paths(data_dir or FASHION_MNIST_DIR, split)


def _cifar_kind(name: str) -> DatasetKind:
    folder, train_files, test_files, num_classes = _CIFAR_LAYOUTS[name]

    def locate(data_dir: str | None) -> None:
        found = _cifar_folder(name, data_dir)
        missing = [f for f in train_files + test_files if not (found / f).is_file()]
        if missing:
            raise DatasetError(f"{name}: {found} is missing {', '.join(missing)}; expected {_cifar_expected(name)}")

    return DatasetKind(name, num_classes, lambda split, data_dir: _read_cifar(name, split, data_dir), locate,
                       f"data_dir holding {folder}/ (the python-pickle batches); never downloaded", needs_data_dir=True)


DATASETS: dict[str, DatasetKind] = {
    "cifar10": _cifar_kind("cifar10"),
    "cifar100": _cifar_kind("cifar100"),
    "fashion-mnist": DatasetKind(
        "fashion-mnist", 10, lambda split, data_dir: read_fashion_mnist(data_dir or FASHION_MNIST_DIR, split),
        _locate_fashion_mnist, f"the four idx files; default {FASHION_MNIST_DIR} (Debian dataset-fashion-mnist)"),
    "embedded": DatasetKind("embedded", 10, lambda split, data_dir: _read_embedded(split), None,
                            "a Fashion-MNIST sample shipped in trainable/assets/"),
    "synthetic": DatasetKind("synthetic", SYNTHETIC_CLASSES, None, None,
                             "class-structured random images generated for tests only"),
}
DATASET_NAMES = tuple(DATASETS)


__all__ = [
    "DATASETS",
    "DATASET_NAMES",
    "DatasetKind",
    "data_problem",
    "DatasetError",
    "ImageDataset",
    "balanced_indices",
    "grey_to_rgb32",
    "iterate_minibatches",
    "load_dataset",
    "make_synthetic",
    "num_minibatches",
    "read_fashion_mnist",
    "read_idx",
]
