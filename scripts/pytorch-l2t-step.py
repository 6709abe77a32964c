#!/usr/bin/env python3
"""PyTorch reference for `pnpm bench step-cost --backbone cnn`: one L2T-ww step vs one fine-tuning step.

Times, on the CPU, the step transferlab's `l2t-ww` method takes (packages/methods/src/l2t-ww/
step.ts, lookahead.ts, meta-nets.ts; shared/feature-transfer.ts) against a plain fine-tuning
step of the same network, so the project's ratio can be compared with PyTorch's:

- network: the `cnn` backbone, cnnSpec([28,28,1], [16,32], 128): conv1 3x3 'same' 16 + ReLU,
  pool1 2x2, conv2 3x3 'same' 32 + ReLU, pool2, flatten, fc 128 + ReLU; linear head to 10
  classes. Batch 64 of random 28x28x1 inputs, labels i % 10. NCHW (the project runs NHWC).
- fine-tune: forward, cross-entropy, backward, SGD (lr 0.1, momentum 0.9, wd 1e-4); an Adam
  (lr 1e-3) row as well, the project's fine-tune default.
- l2t-ww: source = frozen copy of the CNN, target = a fresh one; default taps conv1, conv2 (after
  their ReLU) on both, pairs 'all' (4), 1x1 connectors C_tgt -> C_src, source maps resized
  bilinearly (align_corners=False) to the target tap's size; what-net Linear(C_src, C_src) +
  softmax and where-net Linear(C_src, 1) + relu6 on the pooled source map; matching loss
  beta * sum_pairs mean_b[lambda_b sum_c w_bc mean_hw (S - conn(T))^2], beta 0.5. A step is
  (1) the real SGD step on CE + matching (meta outputs detached), (2) the look-ahead from the
  updated weights: T = 2 matching-only SGD steps (only conv1, conv2 and the connectors get
  gradients; momentum and weight decay move every weight) and one CE step, functional, and
  (3) CE at the look-ahead weights, its gradient in the meta-nets, one Adam step (lr 1e-4,
  wd 1e-4) on them. `exact` differentiates through the look-ahead gradients (create_graph);
  `first-order` takes them at detached weights (the meta-nets still reach them through w, lambda).

Rows are run interleaved (fine-tune SGD, fine-tune Adam, l2t exact, l2t first-order, again ...)
`--rounds` times per thread count; the table gives median ms/step and the median over rounds of
the per-round ratio to the SGD fine-tune step (robust on a loaded machine). JSON lines on stdout.

  /usr/bin/python3 scripts/pytorch-l2t-step.py [--seconds 3] [--threads 1,2] [--rounds 3]
"""

import argparse
import json
import os
import statistics
import sys
import time

p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
p.add_argument("--seconds", type=float, default=3.0, help="timed seconds per row and round")
p.add_argument("--threads", default="1,2", help="torch.set_num_threads values (default 1,2)")
p.add_argument("--rounds", type=int, default=3, help="interleaved rounds per thread count")
p.add_argument("--batch-size", type=int, default=64)
ARGS = p.parse_args()
THREADS = [int(t) for t in ARGS.threads.split(",") if t.strip()]
# As in pytorch-speed.py: BLAS single-threaded, torch.set_num_threads alone sets parallelism.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", str(max(THREADS)))

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

LR, MOM, WD, BETA, T_LOOKAHEAD = 0.1, 0.9, 1e-4, 0.5, 2
TAPS = ["conv1", "conv2"]
CH = {"conv1": 16, "conv2": 32}
PAIRS = [(s, t) for s in TAPS for t in TAPS]  # 'all': source-major, as resolvePairs
MATCH_NAMES = ["conv1.w", "conv1.b", "conv2.w", "conv2.b"]  # layers up to the deepest target tap


def init_cnn(g):
    """He-normal for ReLU layers, zero biases (transferlab's init); head LeCun-normal."""
    def he(shape, fan_in, gain=2.0):
        return torch.randn(shape, generator=g) * (gain / fan_in) ** 0.5
    return {
        "conv1.w": he((16, 1, 3, 3), 9), "conv1.b": torch.zeros(16),
        "conv2.w": he((32, 16, 3, 3), 144), "conv2.b": torch.zeros(32),
        "fc.w": he((128, 32 * 7 * 7), 32 * 7 * 7), "fc.b": torch.zeros(128),
        "head.w": he((10, 128), 128, 1.0), "head.b": torch.zeros(10),
    }


def cnn(q, x, stop_after_conv2=False):
    """(features or None, taps): cnnSpec's layers; a tap is the conv's output after its ReLU."""
    c1 = F.relu(F.conv2d(x, q["conv1.w"], q["conv1.b"], padding=1))
    c2 = F.relu(F.conv2d(F.max_pool2d(c1, 2), q["conv2.w"], q["conv2.b"], padding=1))
    if stop_after_conv2:
        return None, {"conv1": c1, "conv2": c2}
    f = F.relu(F.linear(F.max_pool2d(c2, 2).flatten(1), q["fc.w"], q["fc.b"]))
    return f, {"conv1": c1, "conv2": c2}


def ce(q, x, y):
    return F.cross_entropy(F.linear(cnn(q, x)[0], q["head.w"], q["head.b"]), y)


def matching(q, taps, src_maps, ws, lams):
    total = 0.0
    for i, (_, t) in enumerate(PAIRS):
        diff = src_maps[i] - F.conv2d(taps[t], q[f"conn{i}.w"], q[f"conn{i}.b"])
        per_channel = diff.square().mean((2, 3))  # [N, C_src]
        total = total + ((per_channel * ws[i]).sum(1) * lams[i]).mean()
    return BETA * total


def meta_outputs(meta, pooled):
    ws = [torch.softmax(F.linear(pooled[s], meta[f"what{i}.w"], meta[f"what{i}.b"]), 1)
          for i, (s, _) in enumerate(PAIRS)]
    lams = [F.relu6(F.linear(pooled[s], meta[f"where{i}.w"], meta[f"where{i}.b"])).reshape(-1)
            for i, (s, _) in enumerate(PAIRS)]
    return ws, lams


def sgd_update(q, grads, bufs):
    """PyTorch SGD (coupled wd, momentum); a missing gradient is zero but wd and momentum apply."""
    nq, nb = {}, {}
    for n, w in q.items():
        g = grads.get(n)
        g = w * WD if g is None else g + w * WD
        nb[n] = bufs[n] * MOM + g
        nq[n] = w - LR * nb[n]
    return nq, nb


class L2tWw:
    def __init__(self, x, y, source, mode):
        g = torch.Generator().manual_seed(1)
        self.x, self.y, self.source, self.mode = x, y, source, mode
        self.params = init_cnn(g)
        for i, (s, t) in enumerate(PAIRS):  # 1x1 conv C_tgt -> C_src, PyTorch's default init range
            b = 1 / CH[t] ** 0.5
            self.params[f"conn{i}.w"] = (torch.rand(CH[s], CH[t], 1, 1, generator=g) * 2 - 1) * b
            self.params[f"conn{i}.b"] = (torch.rand(CH[s], generator=g) * 2 - 1) * b
        self.meta = {}
        for i, (s, _) in enumerate(PAIRS):
            c = CH[s]
            self.meta[f"what{i}.w"], self.meta[f"what{i}.b"] = torch.zeros(c, c), torch.zeros(c)
            self.meta[f"where{i}.w"] = (torch.rand(1, c, generator=g) * 2 - 1) / c ** 0.5
            self.meta[f"where{i}.b"] = torch.ones(1)
        for t in list(self.params.values()) + list(self.meta.values()):
            t.requires_grad_()
        self.opt = torch.optim.SGD(self.params.values(), lr=LR, momentum=MOM, weight_decay=WD)
        self.meta_opt = torch.optim.Adam(self.meta.values(), lr=1e-4, weight_decay=1e-4)

    def lookahead_grads(self, loss_fn, q, names, create_graph):
        inner = dict(q)
        if self.mode == "first-order":
            for n in names:
                inner[n] = q[n].detach().requires_grad_()
        gs = torch.autograd.grad(loss_fn(inner), [inner[n] for n in names], create_graph=create_graph)
        return dict(zip(names, gs))

    def step(self):
        x, y = self.x, self.y
        with torch.no_grad():  # the frozen source: taps up to conv2
            _, st = cnn(self.source, x, stop_after_conv2=True)
            src_maps = [F.interpolate(st[s], size=st[t].shape[2:], mode="bilinear", align_corners=False)
                        if st[s].shape[2:] != st[t].shape[2:] else st[s] for s, t in PAIRS]
            pooled = {s: st[s].mean((2, 3)) for s in TAPS}
            ws0, lams0 = meta_outputs(self.meta, pooled)
            stats = [torch.stack([l.mean(), -(w * (w + 1e-12).log()).sum(1).mean()]) for w, l in zip(ws0, lams0)]
            stats = torch.stack(stats).tolist()  # lambda mean, entropy per pair (reported by the project)
        # (1) The real step on CE + matching, meta outputs constant.
        self.opt.zero_grad(set_to_none=True)
        f, taps = cnn(self.params, x)
        logits = F.linear(f, self.params["head.w"], self.params["head.b"])
        loss = F.cross_entropy(logits, y) + matching(self.params, taps, src_maps, ws0, lams0)
        loss.backward()
        self.opt.step()
        # (2) The look-ahead from the updated weights, as a function of the meta-parameters.
        ws, lams = meta_outputs(self.meta, pooled)
        q = {n: w.detach().requires_grad_() for n, w in self.params.items()}
        bufs = {n: self.opt.state[w]["momentum_buffer"] for n, w in self.params.items()}
        conns = [n for n in q if n.startswith("conn")]
        for _ in range(T_LOOKAHEAD):
            loss_fn = lambda r: matching(r, cnn(r, x, stop_after_conv2=True)[1], src_maps, ws, lams)
            q, bufs = sgd_update(q, self.lookahead_grads(loss_fn, q, MATCH_NAMES + conns, True), bufs)
        ce_names = [n for n in q if not n.startswith("conn")]
        # First-order: this gradient is taken at constant weights and does not involve w, lambda.
        grads = self.lookahead_grads(lambda r: ce(r, x, y), q, ce_names, self.mode == "exact")
        q, _ = sgd_update(q, grads, bufs)
        # (3) The meta-objective and the Adam step on the meta-nets.
        meta_loss = ce(q, x, y)
        for w, gr in zip(self.meta.values(), torch.autograd.grad(meta_loss, list(self.meta.values()))):
            w.grad = gr
        self.meta_opt.step()
        return loss.item(), meta_loss.item(), stats


class FineTune:
    def __init__(self, x, y, source, optimizer):
        self.x, self.y = x, y
        self.params = {n: w.clone().requires_grad_() for n, w in source.items()}
        self.opt = (torch.optim.SGD(self.params.values(), lr=LR, momentum=MOM, weight_decay=WD)
                    if optimizer == "sgd" else torch.optim.Adam(self.params.values(), lr=1e-3))

    def step(self):
        self.opt.zero_grad(set_to_none=True)
        loss = ce(self.params, self.x, self.y)
        loss.backward()
        self.opt.step()
        return loss.item(), None, None


def timed(model, seconds):
    """(ms per step, last step's output)."""
    steps, t0 = 0, time.perf_counter()
    while True:
        out = model.step()
        steps += 1
        if time.perf_counter() - t0 >= seconds:
            return 1e3 * (time.perf_counter() - t0) / steps, out


def main():
    torch.set_num_interop_threads(1)
    torch.set_flush_denormal(True)
    n, g = ARGS.batch_size, torch.Generator().manual_seed(0)
    x = torch.randn(n, 1, 28, 28, generator=g)
    y = torch.arange(n) % 10
    source = init_cnn(g)  # the "pretrained" weights (values do not change the cost)
    print(f"torch {torch.__version__}, {os.cpu_count()} CPUs, batch {n}, {ARGS.seconds:g} s per row, "
          f"{ARGS.rounds} interleaved rounds, load average {os.getloadavg()[0]:.1f}", file=sys.stderr)
    cases = {
        "fine-tune sgd": lambda: FineTune(x, y, source, "sgd"),
        "fine-tune adam": lambda: FineTune(x, y, source, "adam"),
        "l2t-ww exact": lambda: L2tWw(x, y, source, "exact"),
        "l2t-ww first-order": lambda: L2tWw(x, y, source, "first-order"),
    }
    rows = []
    for threads in THREADS:
        torch.set_num_threads(threads)
        models = {k: make() for k, make in cases.items()}
        for m in models.values():  # warm-up
            for _ in range(3):
                m.step()
        ms, last = {k: [] for k in cases}, {}
        for r in range(ARGS.rounds):
            for k, m in models.items():
                t, last[k] = timed(m, ARGS.seconds)
                ms[k].append(t)
            print(f"  threads {threads} round {r + 1}: " + ", ".join(f"{k} {v[-1]:.1f} ms" for k, v in ms.items())
                  + f" (load {os.getloadavg()[0]:.1f})", file=sys.stderr)
        for k in cases:
            ratios = [a / b for a, b in zip(ms[k], ms["fine-tune sgd"])]
            ratios_adam = [a / b for a, b in zip(ms[k], ms["fine-tune adam"])]
            rows.append({
                "engine": "pytorch", "backbone": "cnn-16-32-128", "label": k, "batchSize": n,
                "threads": threads, "msPerStep": round(statistics.median(ms[k]), 3),
                "msPerStepRuns": [round(v, 3) for v in ms[k]],
                "costVsFineTuneSgd": round(statistics.median(ratios), 3),
                "costVsFineTuneAdam": round(statistics.median(ratios_adam), 3),
                "loss": last[k][0], "metaLoss": last[k][1], "torch": torch.__version__,
            })
    print("\n| row | threads | ms/step (median) | × fine-tune SGD | × fine-tune Adam |", file=sys.stderr)
    print("|---|---|---|---|---|", file=sys.stderr)
    for r in rows:
        print(f"| {r['label']} | {r['threads']} | {r['msPerStep']:.2f} | {r['costVsFineTuneSgd']:.2f} | "
              f"{r['costVsFineTuneAdam']:.2f} |", file=sys.stderr)
    for r in rows:
        print(json.dumps(r), flush=True)


if __name__ == "__main__":
    main()
