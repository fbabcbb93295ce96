"""The two ways of training R replicas (one configuration, R seeds) inside the one epoch loop (loop.py).

An engine owns the models and optimisers and supplies only what differs between the ways:
building them, one optimiser step on a batch of every replica, evaluation, and its part of a snapshot.
- `InTurn`: R separate models; each replica's step runs with its own global RNG state swapped in, so every
  replica's numbers are bit for bit those of training it alone. One seed (`fit`) is R = 1.
- `Vectorized`: one batched model (torch.func.vmap over stacked parameters: batched matmuls, grouped
  convolutions) and one optimiser step for all. Same initial weights per seed as `InTurn`; dropout masks come
  from one shared generator and float summation order differs, so metrics match in distribution only.
Everything that acts on the data (batch order, shifts, rotations, swaps, re-pairing, metrics, snapshots, resuming)
is the loop's; test-time augmentation (`tta`) is part of evaluation, the same in both.
With `ema`, each engine also keeps an exponential moving average of its weights (and batch-norm statistics),
updated after every step, and evaluates it instead of the trained weights; it is part of the engine's snapshot.
"""
from __future__ import annotations

import contextlib
import functools
import math

import torch
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from ..models import PairOutput, create_ensemble, mean_output
from .augment import tta_views
from .config import TrainConfig, autocast, rng_state, seed_everything, set_rng_state
from .loss import pair_loss


def build_optimizer(parameters, config: TrainConfig):
    parameters = list(parameters)
    if config.optimizer == "adam":
        opt = torch.optim.Adam(parameters, lr=config.lr, weight_decay=config.weight_decay)
    else:
        opt = torch.optim.SGD(parameters, lr=config.lr, momentum=config.momentum,
                              weight_decay=config.weight_decay)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=config.epochs) \
        if config.lr_schedule == "cosine" else None
    return opt, sched


@torch.inference_mode()  # no autograd bookkeeping at all (a little cheaper than no_grad)
def evaluate(model, inputs, classes, target, chunk: int = 1000, precision=contextlib.nullcontext, tta: bool = False
             ) -> tuple[float, float]:
    """(digit error %, comparison error %) in eval mode; digit error is NaN without digit outputs.
    `precision()` makes the context of each forward pass (`config.autocast`); `tta`: each pair's views averaged."""
    model.eval()
    digit_wrong = compare_wrong = 0
    has_digits = True
    for i in range(0, len(inputs), chunk):
        with precision():
            out = predicted(model, inputs[i:i + chunk], tta)
        compare_wrong += (model.predict(out) != target[i:i + chunk]).sum()
        if out.digits is None:
            has_digits = False
        else:
            digit_wrong += (out.digits.argmax(-1) != classes[i:i + chunk]).sum()
    n = len(inputs)
    digit = 100.0 * float(digit_wrong) / (2 * n) if has_digits else math.nan
    return digit, 100.0 * float(compare_wrong) / n


def predicted(model, x: torch.Tensor, tta: bool) -> PairOutput:
    """The model's output on pairs x: itself, or with `tta` the mean over the views of augment.tta_views."""
    return mean_output([model(view) for view in tta_views(x)]) if tta else model(x)


def seeded_model(config: TrainConfig, device: torch.device):
    """A replica's model with its initial weights as its seed draws them, the global generators seeded: the
    same weights whichever engine trains it. An ensemble's members are drawn one after another."""
    seed_everything(config.seed)
    return create_ensemble(config.network, config.ensemble, **config.model_kwargs()).to(device)


class Engine:
    """What both engines share: optimisers and schedulers (one per replica, or one for all), their part of a
    snapshot, and the epoch's mean loss. `name` goes into snapshots; `label` into the error refusing one."""

    name = label = ""

    def __init__(self, config: TrainConfig, device: torch.device):
        self.config, self.device = config, device
        self.precision = functools.partial(autocast, config, device)  # a fresh context per forward pass
        self.optimizers: list = []
        self.schedulers: list = []

    def step(self, x, classes, target) -> torch.Tensor:
        """One optimiser step for every replica on its batch: x (R, B, 2, 14, 14), classes (R, B, 2),
        target (R, B); returns the (R,) detached losses, left on the device (no host sync per step)."""
        raise NotImplementedError

    def errors(self, x, classes, target) -> list[tuple[float, float]]:
        """Per replica (digit error %, comparison error %) in eval mode, inputs as in `step`."""
        raise NotImplementedError

    def train(self) -> None:
        raise NotImplementedError

    def end_epoch(self) -> None:
        for sched in self.schedulers:
            if sched is not None:
                sched.step()

    def mean_loss(self, total: torch.Tensor, steps: int) -> list[float]:
        return [t / max(steps, 1) for t in total.tolist()]

    def state_dict(self) -> dict:
        return {"optimizers": [o.state_dict() for o in self.optimizers],
                "schedulers": [s.state_dict() if s is not None else None for s in self.schedulers]}

    def load_state_dict(self, state: dict) -> None:
        for opt, saved in zip(self.optimizers, state["optimizers"]):
            opt.load_state_dict(saved)
        for sched, saved in zip(self.schedulers, state["schedulers"]):
            if sched is not None:
                sched.load_state_dict(saved)
        self._adopt_hyperparameters()

    def _adopt_hyperparameters(self) -> None:
        """A snapshot saved under another lr or weight decay continues under this config's. That is Population
        Based Training's exploit: a trial goes on from a better trial's checkpoint with mutated values. The
        scheduled lr is rescaled, so the cosine schedule goes on from where it was. The same values (a plain
        resume) change nothing, bit for bit."""
        for i, opt in enumerate(self.optimizers):
            sched = self.schedulers[i] if i < len(self.schedulers) else None
            for j, group in enumerate(opt.param_groups):
                group["weight_decay"] = self.config.weight_decay
                base = sched.base_lrs[j] if sched is not None else group["lr"]
                if base != self.config.lr:
                    group["lr"] *= self.config.lr / base
                    if sched is not None:
                        sched.base_lrs[j] = group["initial_lr"] = self.config.lr
                        sched._last_lr = [g["lr"] for g in opt.param_groups]


class InTurn(Engine):
    name, label = "in_turn", "an in-turn"

    def __init__(self, configs: list[TrainConfig], device: torch.device):
        super().__init__(configs[0], device)
        self.models, self.rngs, self.averages = [], [], []
        for cfg in configs:
            model = seeded_model(cfg, device)  # and the global generators: this replica's dropout stream
            if device.type == "cpu":
                # Channels-last weights make oneDNN keep the conv/pool activations in NHWC, where max-pooling
                # and the conv kernels are vectorised: 1.3–1.7× per train epoch or eval pass in isolation; in
                # whole trials clearly ahead for LeNet, within noise for ResNet (BENCHMARKS.md §1). Only 4-D
                # weights change; the linear net is untouched. Not measured on GPU yet, so CPU only.
                model = model.to(memory_format=torch.channels_last)
            opt, sched = build_optimizer(model.parameters(), cfg)
            if cfg.ema:  # a copy of the model (channels-last too) whose weights and buffers are the average
                self.averages.append(AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(cfg.ema),
                                                   use_buffers=True))
            self.models.append(model)
            self.optimizers.append(opt)
            self.schedulers.append(sched)
            self.rngs.append(rng_state(device))
        # One replica keeps the global generators as they are: no swapping on the single-seed hot path.
        self.swap = len(configs) > 1

    def train(self) -> None:
        for model in self.models:
            model.train()

    def step(self, x, classes, target) -> torch.Tensor:
        losses = []
        for j, (model, opt) in enumerate(zip(self.models, self.optimizers)):
            if self.swap:
                set_rng_state(self.rngs[j], self.device)  # this replica's dropout stream where it stopped
            with self.precision():  # the backward pass runs outside autocast, in each op's forward dtype
                loss = pair_loss(model(x[j]), classes[j], target[j], self.config)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            if self.averages:  # the first update copies the weights, later ones blend them in
                self.averages[j].update_parameters(model)
            if self.swap:
                self.rngs[j] = rng_state(self.device)
            losses.append(loss.detach())
        return torch.stack(losses)

    def errors(self, x, classes, target) -> list[tuple[float, float]]:
        evaluated = [average.module for average in self.averages] or self.models
        return [evaluate(model, x[j], classes[j], target[j], precision=self.precision, tta=self.config.tta)
                for j, model in enumerate(evaluated)]

    def state_dict(self) -> dict:
        # Each replica's RNG as it was after its own last step, not the global one now.
        rngs = self.rngs if self.swap else [rng_state(self.device)]
        state = {**super().state_dict(), "models": [m.state_dict() for m in self.models], "rngs": list(rngs)}
        if self.averages:
            state["averages"] = [average.state_dict() for average in self.averages]
        return state

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        for model, saved in zip(self.models, state["models"]):
            model.load_state_dict(saved)
        # A snapshot without an average (saved with ema 0) starts one: its first update copies the loaded weights.
        for average, saved in zip(self.averages, state.get("averages", ())):
            average.load_state_dict(saved)
        self.rngs = list(state["rngs"])
        if not self.swap:
            set_rng_state(self.rngs[0], self.device)


class Vectorized(Engine):
    name, label = "vectorized", "a vectorized"

    def __init__(self, configs: list[TrainConfig], device: torch.device):
        from torch.func import functional_call, stack_module_state, vmap

        super().__init__(configs[0], device)
        models = [seeded_model(cfg, device) for cfg in configs]  # initial weights exactly as `fit` draws them
        self.params, self.buffers = stack_module_state(models)  # (R, ...) leaves that the optimiser steps
        self.net = net = models[0]  # the module's code and flags; functional_call swaps in the stacked tensors
        opt, sched = build_optimizer(self.params.values(), self.config)
        self.optimizers, self.schedulers = [opt], [sched]
        # The average of the stacked weights and buffers, as InTurn's AveragedModel keeps it for each replica.
        self.average = StackedAverage(self.config.ema, self.params, self.buffers) if self.config.ema else None
        seed_everything(self.config.seed)  # the shared dropout stream
        self.has_digits = True
        lowered = _lowered_precision(net, self.config)

        def call(p, b, x):
            if lowered:  # what autocast does, by hand: vmap's convolutions bypass it (they stay float32)
                p = {k: v.to(torch.bfloat16) if k in lowered else v for k, v in p.items()}
                x = x.to(torch.bfloat16)
            return functional_call(net, (p, b), (x,))

        def replica_loss(p, b, x, classes, target):
            return pair_loss(call(p, b, x), classes, target, self.config)

        def replica_errors(p, b, x, classes, target):
            out = predicted(lambda view: call(p, b, view), x, self.config.tta)
            self.has_digits = out.digits is not None  # plain Python: runs once per call, not per replica
            digit_wrong = (out.digits.argmax(-1) != classes).sum() if self.has_digits \
                else torch.zeros((), device=device)
            return digit_wrong, (net.predict(out) != target).sum()

        self.batched_loss = vmap(replica_loss, randomness="different")  # each replica its own dropout masks
        self.batched_errors = vmap(replica_errors, randomness="different")

    def train(self) -> None:
        self.net.train()

    def step(self, x, classes, target) -> torch.Tensor:
        with self.precision():
            losses = self.batched_loss(self.params, self.buffers, x, classes, target)
        self.optimizers[0].zero_grad(set_to_none=True)
        losses.sum().backward()  # each replica's gradient is that of its own loss
        self.optimizers[0].step()
        if self.average is not None:
            self.average.update(self.params, self.buffers)
        return losses.detach()

    @torch.no_grad()
    def errors(self, x, classes, target) -> list[tuple[float, float]]:
        self.net.eval()
        r, m = x.shape[:2]
        digit, compare = torch.zeros(r, device=self.device), torch.zeros(r, device=self.device)
        chunk = max(1, 4000 // r)  # pairs per replica per forward pass: bounded activation memory
        params, buffers = (self.average.params, self.average.buffers) if self.average is not None \
            else (self.params, self.buffers)
        for i in range(0, m, chunk):
            with self.precision():
                d, k = self.batched_errors(params, buffers, x[:, i:i + chunk], classes[:, i:i + chunk],
                                           target[:, i:i + chunk])
            digit += d
            compare += k
        return [(100.0 * float(d) / (2 * m) if self.has_digits else math.nan, 100.0 * float(k) / m)
                for d, k in zip(digit, compare)]

    def mean_loss(self, total: torch.Tensor, steps: int) -> list[float]:
        # Divided in float32 on the device, as this engine always has (InTurn divides in float64).
        return (total / max(steps, 1)).tolist()

    def state_dict(self) -> dict:
        state = {**super().state_dict(), "params": {k: v.detach() for k, v in self.params.items()},
                 "buffers": dict(self.buffers), "rngs": [rng_state(self.device)]}
        if self.average is not None:
            state["average"] = self.average.state_dict()
        return state

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        with torch.no_grad():
            for name, value in state["params"].items():
                self.params[name].copy_(value)
            for name, value in state["buffers"].items():
                self.buffers[name].copy_(value)
        if self.average is not None and "average" in state:  # else the average starts from the loaded weights
            self.average.load_state_dict(state["average"])
        set_rng_state(state["rngs"][0], self.device)


class StackedAverage:
    """An exponential moving average of the vectorized engine's stacked (R, ...) weights and buffers, updated as
    AveragedModel(use_buffers=True) updates each replica's in turn: the first update copies, later ones call
    torch's EMA function on each (device, dtype) group."""

    def __init__(self, decay: float, params: dict, buffers: dict):
        self.params = {k: v.detach().clone() for k, v in params.items()}
        self.buffers = {k: v.detach().clone() for k, v in buffers.items()}
        self.blend = get_ema_multi_avg_fn(decay)
        self.updates = 0

    @torch.no_grad()
    def update(self, params: dict, buffers: dict) -> None:
        averaged = [*self.params.values(), *self.buffers.values()]
        current = [v.detach() for v in (*params.values(), *buffers.values())]
        if self.updates == 0:
            for a, c in zip(averaged, current, strict=True):
                a.copy_(c)
        else:
            groups: dict = {}
            for a, c in zip(averaged, current, strict=True):
                pair = groups.setdefault((a.device, a.dtype), ([], []))
                pair[0].append(a)
                pair[1].append(c)
            for group_averaged, group_current in groups.values():
                self.blend(group_averaged, group_current, self.updates)
        self.updates += 1

    def state_dict(self) -> dict:
        return {"params": self.params, "buffers": self.buffers, "updates": self.updates}

    @torch.no_grad()
    def load_state_dict(self, state: dict) -> None:
        for mine, saved in ((self.params, state["params"]), (self.buffers, state["buffers"])):
            for name, value in saved.items():
                mine[name].copy_(value)
        self.updates = state["updates"]


def _lowered_precision(net: torch.nn.Module, config: TrainConfig) -> set[str]:
    """Under bf16, autocast by hand for the vectorized engine, whose vmapped convolutions bypass autocast: the
    names of the parameters to run in bfloat16 (convolutions' and linear layers'), and on `net`, batch norm
    made to normalise in float32 and hand on bfloat16, as it does under autocast on CPU (vmap's batch norm
    refuses mixed dtypes). Empty for fp32, and `net` untouched."""
    if config.precision != "bf16":
        return set()
    for module in net.modules():
        if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
            module.register_forward_pre_hook(lambda _m, args: (args[0].float(), *args[1:]))
            module.register_forward_hook(lambda _m, _args, out: out.to(torch.bfloat16))
    layers = (torch.nn.modules.conv._ConvNd, torch.nn.Linear)
    return {f"{prefix}.{name}" if prefix else name for prefix, module in net.named_modules()
            if isinstance(module, layers) for name, _ in module.named_parameters(recurse=False)}


ENGINES = {engine.name: engine for engine in (InTurn, Vectorized)}
