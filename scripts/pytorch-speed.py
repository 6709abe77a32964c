#!/usr/bin/env python3
"""PyTorch reference for `pnpm bench speed`: training steps per second on the CPU.

Builds the transferlab built-in backbones (packages/models/src/backbone.ts,
layer semantics in packages/models/src/layers.ts) as PyTorch modules, adds a
linear head to 10 classes and times full training steps (forward,
cross-entropy, backward, Adam lr 1e-3) on one random batch of 28x28x1 inputs,
the step `pnpm bench speed` times for the `scratch` method. Batch
normalisation runs in training mode. A `mobilenetv2-224` row times a
MobileNetV2 fine-tuning step (width 1.0, 224x224x3, batch 8, 5-class head,
every weight trained, train mode).

Each row is measured at every requested `torch.set_num_threads` value; the
fastest row of each backbone gets `"best": true`. Progress and a table go to
stderr, JSON lines to stdout, in the shape of `pnpm bench speed --json`:

  {"engine": "pytorch", "backend": "cpu", "backbone": "cnn-16-32-128",
   "batchSize": 64, "threads": 2, "stepsPerSecond": ..., ...}

PyTorch is optional: nothing in the project imports this script.

  python3 scripts/pytorch-speed.py [--seconds 3] [--threads 1,2]
      [--backbones mlp,cnn,resnet,resnet-bn,mobilenetv2] [--batch-size 64]
      [--mobilenet-batch-size 8] [--repeats 1]

`otherCpu` in a row is how many cores other processes kept busy while it was
timed (Linux): the numbers only mean something on an otherwise idle machine.
"""

import argparse
import json
import os
import platform
import sys
import time

# Registry id -> row name (the backbone's `name` in the project).
BACKBONES = {
    "mlp": "mlp-256-128",
    "cnn": "cnn-16-32-128",
    "resnet": "resnet-16-32-64",
    "resnet-bn": "resnet-bn-16-32-64",
    "mobilenetv2": "mobilenetv2-224",
}


def parse_args(argv):
    p = argparse.ArgumentParser(
        description="PyTorch CPU training steps/s for the transferlab backbones "
        "(compare with `pnpm bench speed --json`).",
    )
    p.add_argument("--seconds", type=float, default=3.0, help="timed seconds per row (default 3)")
    p.add_argument(
        "--threads",
        default="1,2",
        help="comma-separated torch.set_num_threads values, one row each (default 1,2)",
    )
    p.add_argument(
        "--backbones",
        default=",".join(BACKBONES),
        help="comma-separated registry ids or names: "
        + ", ".join(f"{k} ({v})" for k, v in BACKBONES.items())
        + " (default: all)",
    )
    p.add_argument(
        "--batch-size", type=int, default=64, help="batch of the 28x28 backbones (default 64)"
    )
    p.add_argument(
        "--mobilenet-batch-size", type=int, default=8, help="batch of mobilenetv2-224 (default 8)"
    )
    p.add_argument(
        "--warmup-steps", type=int, default=3, help="untimed steps before each row (default 3)"
    )
    p.add_argument(
        "--repeats",
        type=int,
        default=1,
        help="time each row this many times and report the median run (default 1; "
        "3 or 5 on a noisy machine)",
    )
    args = p.parse_args(argv)
    if not args.seconds > 0:
        p.error(f"--seconds must be positive, got {args.seconds}")
    try:
        args.threads = [int(t) for t in args.threads.split(",") if t.strip()]
    except ValueError:
        p.error(f"--threads must be comma-separated integers, got {args.threads!r}")
    if not args.threads or any(t < 1 for t in args.threads):
        p.error("--threads needs at least one value, each >= 1")
    by_name = {v: k for k, v in BACKBONES.items()}
    ids = []
    for b in (s.strip() for s in args.backbones.split(",")):
        if not b:
            continue
        if b in BACKBONES:
            ids.append(b)
        elif b in by_name:
            ids.append(by_name[b])
        else:
            p.error(f'unknown backbone "{b}"; valid: {", ".join(list(BACKBONES) + list(by_name))}')
    if not ids:
        p.error("--backbones is empty")
    args.backbones = ids
    if args.repeats < 1:
        p.error(f"--repeats must be >= 1, got {args.repeats}")
    if args.batch_size < 2 or args.mobilenet_batch_size < 2:
        p.error("batch sizes must be >= 2 (batch normalisation in training mode)")
    return args


ARGS = parse_args(sys.argv[1:])

# Thread pools must be sized before torch is imported. torch's intra-op pool
# (OpenMP) is resized per row with torch.set_num_threads(). A BLAS library
# brings its own pool: the Debian/Ubuntu torch calls the system BLAS (usually
# OpenBLAS, pthread build), which by default starts one thread per core and
# ignores torch.set_num_threads(). Its GEMM threads would then run on top of
# torch's threads: on a 2-core machine a "2 threads" row is 4 busy threads
# (oversubscription, spinning threads waiting for each other), and a
# "1 thread" row is not single-threaded at all. So BLAS gets one thread and
# torch.set_num_threads() alone decides the parallelism. OMP_NUM_THREADS
# caps the OpenMP pool (also used by an OpenMP build of OpenBLAS and by
# oneDNN's convolutions) at the largest count measured. Values already set in
# the environment are kept.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", str(max(ARGS.threads)))

try:
    import torch
    import torch.nn as nn
    import torch.nn.functional as F
except ImportError:
    sys.exit(
        "pytorch-speed.py needs PyTorch (e.g. `apt-get install python3-torch` or "
        "`pip install torch`); the project itself does not."
    )


# ---------------------------------------------------------------------------
# The project's backbones. Layouts are NCHW (PyTorch's); the project runs
# NHWC, which changes the flatten order but not the work. Weights start with
# PyTorch's default initialisation: the cost of a step does not depend on the
# values.


def conv3x3(cin, cout, stride=1):
    # 'same' padding. For stride 2 on an even size TensorFlow pads (0, 1) and
    # PyTorch (1, 1) here: the same output shape and the same amount of work.
    return nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=True)


def mlp(input_shape=(1, 28, 28), hidden=(256, 128)):
    """mlpSpec: flatten, then dense + ReLU layers."""
    layers = [nn.Flatten()]
    fan_in = input_shape[0] * input_shape[1] * input_shape[2]
    for units in hidden:
        layers += [nn.Linear(fan_in, units), nn.ReLU()]
        fan_in = units
    return nn.Sequential(*layers), fan_in


def cnn(input_shape=(1, 28, 28), channels=(16, 32), dense_units=128):
    """cnnSpec: (3x3 conv 'same' + ReLU + 2x2 max-pool stride 2 'valid') per channel count, dense + ReLU."""
    c, h, w = input_shape
    layers = []
    for filters in channels:
        layers += [conv3x3(c, filters), nn.ReLU(), nn.MaxPool2d(2, 2)]
        c, h, w = filters, h // 2, w // 2
    layers += [nn.Flatten(), nn.Linear(c * h * w, dense_units), nn.ReLU()]
    return nn.Sequential(*layers), dense_units


class BasicBlock(nn.Module):
    """layers.ts 'residual': relu(bn2(conv2(relu(bn1(conv1(x, stride))))) + shortcut(x)).

    The shortcut is x, or a 1x1 convolution with the block's stride (then its
    own batch norm) when the stride is not 1 or the channels change. The
    convolutions keep their biases even with batch normalisation, as in the
    project.
    """

    def __init__(self, cin, filters, stride, batch_norm):
        super().__init__()
        bn = (lambda: nn.BatchNorm2d(filters, eps=1e-5, momentum=0.1)) if batch_norm else nn.Identity
        self.conv1 = conv3x3(cin, filters, stride)
        self.bn1 = bn()
        self.conv2 = conv3x3(filters, filters)
        self.bn2 = bn()
        if stride != 1 or cin != filters:
            self.proj = nn.Conv2d(cin, filters, 1, stride=stride, padding=0, bias=True)
            self.proj_bn = bn()
        else:
            self.proj = None

    def forward(self, x):
        branch = self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x)))))
        shortcut = self.proj_bn(self.proj(x)) if self.proj is not None else x
        return F.relu(branch + shortcut)


def resnet(input_shape=(1, 28, 28), stages=(16, 32, 64), blocks_per_stage=1, batch_norm=False):
    """resnetSpec: 3x3 stem (+ BN) + ReLU, basic blocks (first block of later stages stride 2), global average pool."""
    c = input_shape[0]
    layers = [conv3x3(c, stages[0])]
    if batch_norm:
        layers.append(nn.BatchNorm2d(stages[0], eps=1e-5, momentum=0.1))
    layers.append(nn.ReLU())
    c = stages[0]
    for stage, filters in enumerate(stages):
        for b in range(blocks_per_stage):
            stride = 2 if stage > 0 and b == 0 else 1
            layers.append(BasicBlock(c, filters, stride, batch_norm))
            c = filters
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten()]
    return nn.Sequential(*layers), c


# ---------------------------------------------------------------------------
# MobileNetV2 (Sandler et al. 2018), width 1.0: torchvision's when it is
# installed, else the same network built here.


class InvertedResidual(nn.Module):
    def __init__(self, cin, cout, stride, expand):
        super().__init__()
        hidden = cin * expand
        layers = []
        if expand != 1:
            layers += [nn.Conv2d(cin, hidden, 1, bias=False), nn.BatchNorm2d(hidden), nn.ReLU6()]
        layers += [
            nn.Conv2d(hidden, hidden, 3, stride, 1, groups=hidden, bias=False),
            nn.BatchNorm2d(hidden),
            nn.ReLU6(),
            nn.Conv2d(hidden, cout, 1, bias=False),
            nn.BatchNorm2d(cout),
        ]
        self.conv = nn.Sequential(*layers)
        self.residual = stride == 1 and cin == cout

    def forward(self, x):
        return x + self.conv(x) if self.residual else self.conv(x)


def mobilenet_v2_by_hand(num_classes):
    # (expansion t, channels c, repeats n, first stride s), as in the paper's Table 2.
    settings = [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2),
                (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1)]
    layers = [nn.Conv2d(3, 32, 3, 2, 1, bias=False), nn.BatchNorm2d(32), nn.ReLU6()]
    cin = 32
    for t, c, n, s in settings:
        for i in range(n):
            layers.append(InvertedResidual(cin, c, s if i == 0 else 1, t))
            cin = c
    layers += [nn.Conv2d(cin, 1280, 1, bias=False), nn.BatchNorm2d(1280), nn.ReLU6(),
               nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(0.2), nn.Linear(1280, num_classes)]
    return nn.Sequential(*layers)


def mobilenet_v2(num_classes):
    """(model, implementation): the whole network with a num_classes head."""
    try:
        import torchvision
    except ImportError:
        return mobilenet_v2_by_hand(num_classes), "by-hand"
    try:
        model = torchvision.models.mobilenet_v2(weights=None, width_mult=1.0)
    except TypeError:  # torchvision < 0.13
        model = torchvision.models.mobilenet_v2(pretrained=False, width_mult=1.0)
    model.classifier[-1] = nn.Linear(model.last_channel, num_classes)
    return model, f"torchvision {torchvision.__version__}"


# ---------------------------------------------------------------------------


def build(backbone_id, batch_size):
    """(model, x, y, extra row fields)."""
    if backbone_id == "mobilenetv2":
        model, impl = mobilenet_v2(5)
        x = torch.randn(batch_size, 3, 224, 224)
        y = torch.randint(0, 5, (batch_size,))
        return model, x, y, {"mobilenet": impl}
    make = {
        "mlp": lambda: mlp(),
        "cnn": lambda: cnn(),
        "resnet": lambda: resnet(batch_norm=False),
        "resnet-bn": lambda: resnet(batch_norm=True),
    }[backbone_id]
    body, feature_dim = make()
    model = nn.Sequential(body, nn.Linear(feature_dim, 10))  # the linear head
    x = torch.randn(batch_size, 1, 28, 28)
    y = torch.randint(0, 10, (batch_size,))
    return model, x, y, {}


def busy_cpu_seconds():
    """CPU seconds all processes have spent busy (Linux /proc/stat), or None."""
    try:
        with open("/proc/stat") as f:
            fields = [int(v) for v in f.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    # user..steal; guest time is already counted in user.
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def measure(backbone_id, batch_size, threads, seconds, warmup_steps):
    """(steps, steps per second, extra row fields) of one timed run."""
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    model, x, y, extra = build(backbone_id, batch_size)
    model.train()  # batch normalisation on batch statistics, running statistics updated
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)

    def step():
        opt.zero_grad(set_to_none=True)
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        opt.step()

    for _ in range(warmup_steps):
        step()
    steps = 0
    busy0, own0 = busy_cpu_seconds(), time.process_time()
    started = time.perf_counter()
    while True:
        step()
        steps += 1
        elapsed = time.perf_counter() - started
        if elapsed >= seconds:
            break
    busy1, own1 = busy_cpu_seconds(), time.process_time()
    if busy0 is not None and busy1 is not None:
        # Cores kept busy by other processes meanwhile: with 2 cores, anything
        # well above 0 means the row competed for the CPU (2-thread rows most).
        extra["otherCpu"] = round(max(0.0, (busy1 - busy0) - (own1 - own0)) / elapsed, 2)
    return steps, steps / elapsed, extra


def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def main():
    # Inter-op parallelism plays no part in an eager training step.
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:
        pass
    cores = os.cpu_count()
    print(
        f"torch {torch.__version__} on {cpu_model()} ({cores} logical CPUs); "
        f"OPENBLAS_NUM_THREADS={os.environ.get('OPENBLAS_NUM_THREADS')} "
        f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS')}; "
        f"{ARGS.seconds:g} s per row, threads {ARGS.threads}",
        file=sys.stderr,
    )
    rows = []
    for backbone_id in ARGS.backbones:
        batch_size = ARGS.mobilenet_batch_size if backbone_id == "mobilenetv2" else ARGS.batch_size
        for threads in ARGS.threads:
            runs = [
                measure(backbone_id, batch_size, threads, ARGS.seconds, ARGS.warmup_steps)
                for _ in range(ARGS.repeats)
            ]
            runs.sort(key=lambda r: r[1])
            steps, sps, extra = runs[len(runs) // 2]
            if len(runs) > 1:
                extra["repeats"] = len(runs)
                extra["stepsPerSecondRange"] = [round(runs[0][1], 3), round(runs[-1][1], 3)]
            row = {
                "engine": "pytorch",
                "backend": "cpu",
                "backbone": BACKBONES[backbone_id],
                "batchSize": batch_size,
                "threads": threads,
                "stepsPerSecond": round(sps, 3),
                "examplesPerSecond": round(sps * batch_size, 1),
                "steps": steps,
                "torch": torch.__version__,
                **extra,
            }
            rows.append(row)
            other = extra.get("otherCpu")
            print(
                f"  {row['backbone']:<20} threads {threads}: {sps:8.2f} steps/s ({steps} steps"
                + (f", other processes busy {other:.2f} cores" if other is not None else "")
                + ")",
                file=sys.stderr,
            )
    for backbone in {r["backbone"] for r in rows}:
        mine = [r for r in rows if r["backbone"] == backbone]
        best = max(mine, key=lambda r: r["stepsPerSecond"])
        for r in mine:
            r["best"] = r is best
    print("\n| backbone | batch | threads | steps/s | examples/s |", file=sys.stderr)
    print("|---|---|---|---|---|", file=sys.stderr)
    for r in rows:
        mark = " (best)" if r["best"] and len(ARGS.threads) > 1 else ""
        print(
            f"| {r['backbone']} | {r['batchSize']} | {r['threads']} | "
            f"{r['stepsPerSecond']:.1f}{mark} | {r['examplesPerSecond']:.0f} |",
            file=sys.stderr,
        )
    for r in rows:
        print(json.dumps(r), flush=True)


if __name__ == "__main__":
    main()
