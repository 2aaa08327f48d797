"""Step time of `baseline`, `aligned` and `uda` on the same model and images per step.

The reference loop's own step (training.loop: model, teacher, taps, alignment, ClassMix,
strong augmentation, AdamW with DAFormer's groups), forward + backward + optimizer step
(+ EMA update for uda), on random inputs so data loading does not blur the comparison.
Every mode sees ``--pairs`` pairs: baseline as 2 x pairs independent images, aligned as
pairs with feature alignment on the model's layers, uda adds one target image per pair,
the teacher's pseudo-labels and the mixed pairs. Interleaved rounds (each starting with
another mode), median, ratios to baseline from the same run.

    nice -n 19 python benchmarks/train_step_time.py [--model daformer_mit_b0] [--crop 512]
        [--pairs 2] [--steps 3] [--device cpu|cuda]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time

import torch

from training.classmix import ema_alpha, ema_update
from training.config import TrainConfig
from training.loop import _optimise, _terms, build_parts


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--model", default="daformer_mit_b0")
    parser.add_argument("--crop", type=int, default=512)
    parser.add_argument("--pairs", type=int, default=2)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--align", default="cosine")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    torch.manual_seed(0)
    device = torch.device(args.device)
    n, c = args.pairs, args.crop
    y = torch.randint(0, 16, (n, c, c))
    y[:, : c // 8] = 255
    a, b = torch.randn(n, 3, c, c), torch.randn(n, 3, c, c)
    batches = {"baseline": {"image": torch.cat([a, b]), "label": torch.cat([y, y])},
               "aligned": {"image_a": a, "image_b": b, "label": y},
               "uda": {"image_a": a, "image_b": b, "label": y}}
    target = {"image": torch.randn(n, 3, c, c)}
    parts = {}
    with tempfile.TemporaryDirectory() as tmp:
        for mode in batches:
            cfg = TrainConfig(data="-", out=tmp, recipe="daformer", mode=mode, model=args.model,
                              align=args.align, crop=c, batch=2 * n, lr=6e-5,
                              head_lr_mult=10.0, warmup_iters=0, poly_power=1.0, iters=10**6,
                              pseudo_crop=True)
            names = [str(i) for i in range(16)]
            parts[mode] = (cfg, build_parts(cfg, 16, names, device, False))
    gen = torch.Generator().manual_seed(0)

    def step(mode: str) -> None:
        cfg, p = parts[mode]
        terms = _terms(p, cfg, batches[mode], target if mode == "uda" else None, device, gen)
        _optimise(p, torch.stack(list(terms.values())).sum())
        if p.teacher is not None:
            ema_update(p.teacher, p.model, ema_alpha(100, cfg.ema))

    times: dict[str, list[float]] = {m: [] for m in batches}
    for mode in batches:  # warm-up
        step(mode)
    modes = list(batches)
    for r in range(args.steps):
        # each round starts with another mode: the first step after the previous round's
        # largest one pays for memory the allocator gave back (page faults)
        for mode in modes[r % 3:] + modes[:r % 3]:
            if device.type == "cuda":
                torch.cuda.synchronize()
            start = time.perf_counter()
            step(mode)
            if device.type == "cuda":
                torch.cuda.synchronize()
            times[mode].append(time.perf_counter() - start)
    base = statistics.median(times["baseline"])
    layers = len(parts["aligned"][1].layers)
    print(f"{args.model}, {n} pairs ({2 * n} images) of {c}x{c} per step on {device.type} "
          f"({torch.get_num_threads()} threads), {args.align} alignment on {layers} layers, "
          f"median of {args.steps} interleaved steps:")
    for mode, values in times.items():
        median = statistics.median(values)
        print(f"  {mode:9s} {median * 1000:8.0f} ms  ratio to baseline {median / base:.2f}")


if __name__ == "__main__":
    main()
