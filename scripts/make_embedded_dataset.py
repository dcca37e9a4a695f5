"""Rebuild ``trainable/assets/fashion_mnist_sample.npz``, the `embedded` dataset, from Fashion-MNIST.

Reads the four standard idx files (as installed by the Debian package ``dataset-fashion-mnist``) with
``trainable.data.read_fashion_mnist`` and keeps a deterministic class-balanced sample: 500 train
images per class from the train split and 100 test images per class from the t10k split (fixed seed).
The npz holds uint8 ``train_images (5000, 28, 28)``, ``train_labels (5000,)``, ``test_images
(1000, 28, 28)``, ``test_labels (1000,)`` and the positions of the images in the source files
(``train_source_index``, ``test_source_index``). Same source, same arrays.

    python scripts/make_embedded_dataset.py                          # default source and output
    python scripts/make_embedded_dataset.py --source DIR --out sample.npz
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from trainable.data import FASHION_MNIST_DIR, balanced_indices, read_fashion_mnist

SEED = 20170825  # fixed: the sample must not change between rebuilds
PER_CLASS = {"train": 500, "test": 100}
DEFAULT_OUT = Path(__file__).resolve().parents[1] / "trainable" / "assets" / "fashion_mnist_sample.npz"


def build_sample(source: str | Path) -> dict[str, np.ndarray]:
    """The arrays of the embedded sample, read from the idx files in ``source``."""
    arrays: dict[str, np.ndarray] = {}
    for offset, split in enumerate(("train", "test")):
        images, labels = read_fashion_mnist(source, split)
        keep = balanced_indices(labels, PER_CLASS[split] * 10, SEED + offset)
        arrays[f"{split}_images"] = np.ascontiguousarray(images[keep], dtype=np.uint8)
        arrays[f"{split}_labels"] = np.ascontiguousarray(labels[keep], dtype=np.uint8)
        arrays[f"{split}_source_index"] = keep.astype(np.int32)
    return arrays


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--source", default=FASHION_MNIST_DIR,
                        help=f"directory of the Fashion-MNIST idx files (default: {FASHION_MNIST_DIR})")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"npz to write (default: {DEFAULT_OUT})")
    args = parser.parse_args(argv)

    arrays = build_sample(args.source)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_name(args.out.name + ".tmp.npz")
    np.savez_compressed(tmp, **arrays)
    tmp.replace(args.out)
    counts = {s: np.bincount(arrays[f"{s}_labels"], minlength=10).tolist() for s in ("train", "test")}
    print(f"wrote {args.out} ({args.out.stat().st_size / 1e6:.2f} MB); images per class: {counts}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
