"""Step time of `aligned` against `baseline` on the same number of images per step.

Same model, same 8 images per step (baseline: 8 independent images; aligned: 4 pairs with
feature taps and the alignment loss on two layers), forward + backward + optimizer step,
on random inputs so data loading does not blur the comparison. Interleaved rounds, median.

    python benchmarks/train_step_time.py [--device cuda] [--crop 256]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F

from training.losses import AlignmentLoss
from training.model import FeatureTaps, build_model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--model", default="lraspp_mobilenet_v3_large")
    parser.add_argument("--crop", type=int, default=256)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--align", default="cosine")
    args = parser.parse_args()
    torch.manual_seed(0)
    device = torch.device(args.device)
    model, layers = build_model(args.model, 16)
    model.to(device).train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    x = torch.randn(args.batch, 3, args.crop, args.crop, device=device)
    y = torch.randint(0, 16, (args.batch, args.crop, args.crop), device=device)
    y[:, :, : args.crop // 8] = 255
    half = args.batch // 2
    align = AlignmentLoss(args.align, dict.fromkeys(layers, 0.1), 16)
    taps = FeatureTaps(model, layers)

    def baseline() -> None:
        loss = F.cross_entropy(model(x), y, ignore_index=255)
        opt.zero_grad()
        loss.backward()
        opt.step()

    def aligned() -> None:
        logits = model(x)
        feats = taps.features
        loss = F.cross_entropy(logits, y, ignore_index=255)
        term, _ = align({k: v[:half] for k, v in feats.items()},
                        {k: v[half:] for k, v in feats.items()}, y[:half])
        opt.zero_grad()
        (loss + term).backward()
        opt.step()

    times: dict[str, list[float]] = {"baseline": [], "aligned": []}
    for fn in (baseline, aligned):  # warm-up
        fn()
    for _ in range(args.steps):
        for name, fn in (("baseline", baseline), ("aligned", aligned)):
            if device.type == "cuda":
                torch.cuda.synchronize()
            start = time.perf_counter()
            fn()
            if device.type == "cuda":
                torch.cuda.synchronize()
            times[name].append(time.perf_counter() - start)
    b, a = statistics.median(times["baseline"]), statistics.median(times["aligned"])
    print(f"{args.model}, {args.batch} images of {args.crop}x{args.crop} per step on "
          f"{device.type}, {args.align} alignment on {len(layers)} layers: baseline "
          f"{b * 1000:.0f} ms, aligned {a * 1000:.0f} ms, ratio {a / b:.3f}")


if __name__ == "__main__":
    main()
