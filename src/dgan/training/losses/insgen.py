"""Diffusion-InsGen: the StyleGAN2 loss plus contrastive instance discrimination (InsGen).

InsGen (Yang et al., 2021) keeps a discriminator trained on a few thousand images from
memorising them by asking it, besides real-vs-fake, to tell each image from the others
(MoCo-style, temperature 0.2). Three terms, each with its own weight (0 switches it off):

- real instance discrimination, on D (Dmain): two augmentations of a real image are a positive
  pair, the queue of earlier real keys the negatives;
- fake instance discrimination, on D (Dmain): a fake G(z) and G(z + 0.15 n) are a positive pair;
- fake instance discrimination, on G (Gmain, weight 0.1): G is rewarded when D can tell its
  samples apart, a push towards diverse samples; the queue is read, not written.

The query is D's embedding of one view (gradient to D's trunk and head, or in the G phase to G);
the key is the embedding of the other view by the momentum copy ``D_ema`` (D with its heads,
momentum 0.999), with no gradient. Views are clean (t = 0: D's trunk never sees t), augmented by
``view_augment`` (the reference: StyleGAN2-ADA 'bgc' at a fixed p of 0.2), not diffused.

Every queue holds unit-length keys of past batches; each rank enqueues the keys of all ranks,
all-gathered in rank order, so the queues stay equal across ranks. Queues, pointers and
``D_ema`` are buffers and submodules of the loss, hence of the module's checkpoint.

Departures from the reference, on purpose: the heads train with D's optimizer (the reference
gives the fake head G's lr and lazy ratio; both are 0.0025 in the AFHQ preset), and the momentum
update of the heads happens once per iteration together with D_ema's (the reference updates
each head at each of its calls, i.e. once or twice per round).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

from dgan.core.state_fit import state_mismatches
from dgan.networks.insgen import FAKE_HEAD, REAL_HEAD
from dgan.training.losses.base import GANNetworks
from dgan.training.losses.stylegan2 import D_MAIN_PHASES, StyleGAN2Loss

# InsGen's defaults (the reference's training options).
DEFAULT_TEMPERATURE = 0.2
DEFAULT_MOMENTUM = 0.999
DEFAULT_LATENT_NOISE = 0.15        # std of the latent perturbation of the fake positive view
DEFAULT_QUEUE_FRACTION = 0.05      # queue length as a fraction of the training set
DEFAULT_FAKE_ON_G_WEIGHT = 0.1
# Added to the view augmentation's seed (besides the rank): its stream then differs from the
# run's ADA and diffusion streams, which start from the same config seed plus the rank.
VIEW_SEED_OFFSET = 1 << 20


class KeyQueue(nn.Module):
    """A ring buffer of ``size`` unit-length keys of width ``dim`` (MoCo's queue).

    Starts with random unit vectors, as MoCo does, so the loss has negatives from the first
    step. ``push`` writes keys at the pointer and wraps around.

    Args:
        size: number of keys held.
        dim: width of a key.
    """

    def __init__(self, size: int, dim: int) -> None:
        super().__init__()
        if size < 1:
            raise ValueError(f"queue size={size} must be an integer >= 1")
        self.register_buffer("keys", F.normalize(torch.randn(size, dim), dim=1))
        self.register_buffer("ptr", torch.zeros((), dtype=torch.long))

    @property
    def size(self) -> int:
        return self.keys.shape[0]

    @torch.no_grad()
    def push(self, keys: torch.Tensor) -> None:
        """Enqueue ``keys`` [n, dim] in order, overwriting the oldest (only the newest ``size``
        survive when n > size); no host synchronisation."""
        n = keys.shape[0]
        kept = min(n, self.size)
        offsets = torch.arange(n - kept, n, device=self.keys.device)
        slots = (self.ptr + offsets) % self.size
        self.keys[slots] = keys[n - kept:].detach().to(self.keys)
        self.ptr.copy_((self.ptr + n) % self.size)


def instance_nce(query: torch.Tensor, key: torch.Tensor, negatives: torch.Tensor,
                 temperature: float) -> torch.Tensor:
    """MoCo's InfoNCE loss: mean over i of -log softmax_j(l_ij / T) at the positive j = 0, with
    l_i0 = q_i . k_i and l_ij = q_i . n_j (all vectors unit length).

    Args:
        query: queries [N, D] (the gradient flows through them).
        key: their positive keys [N, D].
        negatives: negative keys [K, D].
        temperature: softmax temperature T.
    """
    positive = (query * key).sum(dim=1, keepdim=True)
    negative = query @ negatives.t()
    logits = torch.cat([positive, negative], dim=1) / temperature
    target = torch.zeros(query.shape[0], dtype=torch.long, device=query.device)
    return F.cross_entropy(logits, target)


def gather_keys(keys: torch.Tensor) -> torch.Tensor:
    """``keys`` of every rank, concatenated in rank order (this rank's alone without DDP)."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return keys
    keys = keys.contiguous()
    parts = [torch.empty_like(keys) for _ in range(dist.get_world_size())]
    dist.all_gather(parts, keys)
    return torch.cat(parts)


class InsGenLoss(StyleGAN2Loss):
    """StyleGAN2's loss with InsGen's real and fake instance discrimination.

    Needs D to be a :class:`dgan.networks.insgen.InstanceDiscriminator`.

    Args:
        r1_gamma: weight of R1 (0 disables it).
        pl_weight: weight of path-length regularisation (0 disables it).
        pl_batch_shrink: the path-length batch is the round's batch divided by this.
        pl_decay: decay of the running mean path length.
        style_mixing_prob: probability of mixing two latents' styles.
        real_weight: weight of real instance discrimination on D (0 switches it off).
        fake_weight: weight of fake instance discrimination on D (0 switches it off).
        fake_on_g_weight: weight of fake instance discrimination on G (0 switches it off).
        temperature: softmax temperature of the contrastive losses.
        momentum: momentum of D_ema, the key encoder (D and its heads).
        latent_noise: std of the latent perturbation that makes the fake positive view.
        real_queue_size: negatives in the real queue (None: queue_fraction of the dataset).
        fake_queue_size: negatives in the fake queue (None: queue_fraction of the dataset).
        queue_fraction: default queue length as a fraction of the dataset size.
        dataset_size: images in the training set, x-flips included (the builder fills it in).
        view_augment: augmentation that makes the two views (None: the run's augmentation,
            or none).
    """

    def __init__(
        self,
        r1_gamma: float = 10.0,
        pl_weight: float = 0.0,
        pl_batch_shrink: int = 2,
        pl_decay: float = 0.01,
        style_mixing_prob: float = 0.0,
        real_weight: float = 1.0,
        fake_weight: float = 1.0,
        fake_on_g_weight: float = DEFAULT_FAKE_ON_G_WEIGHT,
        temperature: float = DEFAULT_TEMPERATURE,
        momentum: float = DEFAULT_MOMENTUM,
        latent_noise: float = DEFAULT_LATENT_NOISE,
        real_queue_size: int | None = None,
        fake_queue_size: int | None = None,
        queue_fraction: float = DEFAULT_QUEUE_FRACTION,
        dataset_size: int | None = None,
        view_augment: nn.Module | None = None,
    ) -> None:
        super().__init__(r1_gamma=r1_gamma, pl_weight=pl_weight, pl_batch_shrink=pl_batch_shrink,
                         pl_decay=pl_decay, style_mixing_prob=style_mixing_prob)
        for key, value in (("real_weight", real_weight), ("fake_weight", fake_weight),
                           ("fake_on_g_weight", fake_on_g_weight),
                           ("latent_noise", latent_noise)):
            if value < 0:
                raise ValueError(f"{key}={value} must be >= 0")
        if temperature <= 0:
            raise ValueError(f"temperature={temperature} must be > 0")
        if not 0 <= momentum <= 1:
            raise ValueError(f"momentum={momentum} must be in [0, 1]")
        if not 0 < queue_fraction <= 1:
            raise ValueError(f"queue_fraction={queue_fraction} must be in (0, 1]")
        self.real_weight = float(real_weight)
        self.fake_weight = float(fake_weight)
        self.fake_on_g_weight = float(fake_on_g_weight)
        self.temperature = float(temperature)
        self.momentum = float(momentum)
        self.latent_noise = float(latent_noise)
        self.queue_sizes = {REAL_HEAD: self._queue_size("real_queue_size", real_queue_size,
                                                        queue_fraction, dataset_size),
                            FAKE_HEAD: self._queue_size("fake_queue_size", fake_queue_size,
                                                        queue_fraction, dataset_size)}
        self.view_augment = view_augment
        # Built in bind(), once D (whose copy D_ema is, and whose head width the keys have) is
        # known; both exist before any checkpoint is loaded, since the module binds in __init__.
        self.D_ema: nn.Module | None = None
        self.queues = nn.ModuleDict()
        # Set when init= gave D_ema: the fresh run then keeps it instead of copying D.
        self._pretrained_D_ema = False

    @staticmethod
    def _queue_size(name: str, size: int | None, fraction: float, dataset_size: int | None
                    ) -> int:
        if size is not None:
            if size < 1:
                raise ValueError(f"{name}={size} must be an integer >= 1")
            return int(size)
        if dataset_size is None:
            raise ValueError(f"{name}: give it, or dataset_size for {fraction:g} of the dataset")
        # The reference's int(0.05 * len(dataset)), at least one key.
        return max(int(fraction * dataset_size), 1)

    def bind(self, nets: GANNetworks) -> None:
        if not all(hasattr(nets.D, name) for name in ("features", "project", "head_dim")):
            raise ValueError(
                f"InsGenLoss needs a discriminator with contrastive heads, not "
                f"{type(nets.D).__name__}: set model.discriminator._target_="
                "dgan.networks.insgen.InstanceDiscriminator"
            )
        super().bind(nets)
        self.D_ema = copy.deepcopy(nets.D).eval().requires_grad_(False)
        self.queues = nn.ModuleDict({head: KeyQueue(size, nets.D.head_dim)
                                     for head, size in self.queue_sizes.items()})

    # ------------------------------------------------------------------ module hooks

    def start_run(self, rank: int) -> None:
        # D_ema starts as D unless init= gave one: after init= of a D alone a random D_ema would
        # lag for thousands of steps. Each rank draws its own views (the diffusion's and ADA's
        # rule).
        if not self._pretrained_D_ema:
            with torch.no_grad():
                for ema, own in zip(self.D_ema.state_dict().values(),
                                    self.nets.D.state_dict().values(), strict=True):
                    ema.copy_(own)
        augment = self.view_augment
        if augment is not None and hasattr(augment, "reseed"):
            augment.reseed(augment.seed + VIEW_SEED_OFFSET + rank)

    def init_from(self, state: Mapping[str, torch.Tensor], source: str) -> list[str]:
        """Take D_ema and the queues of a pretrained loss state (``train init=``).

        D_ema is taken when ``state`` has it (a dgan InsGen checkpoint, or a Diffusion-InsGen
        pickle with its D_ema and momentum heads); without it the run starts D_ema as D. A queue
        is taken when it has this run's length, which follows the dataset size: another
        length starts with random keys, as any fresh run does, and is said so.

        Args:
            state: the source's ``loss.*`` tensors without the ``loss.`` prefix.
            source: the file they came from (for messages).

        Returns:
            What was taken (``D_ema``, ``real queue``, ``fake queue``).

        Raises:
            ValueError: the source's D_ema does not fit this run's D.
        """
        taken = []
        prefix = "D_ema."
        d_ema = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
        if d_ema:
            bad = state_mismatches(d_ema, self.D_ema.state_dict())
            if bad is not None:
                raise ValueError(f"its D_ema does not fit this model ({bad})")
            self.D_ema.load_state_dict(d_ema)
            self._pretrained_D_ema = True
            taken.append("D_ema")
        for head, queue in self.queues.items():
            keys, ptr = state.get(f"queues.{head}.keys"), state.get(f"queues.{head}.ptr")
            if keys is None or ptr is None:
                continue
            if tuple(keys.shape) != tuple(queue.keys.shape):
                print(f"[dgan] init: the {head} queue of {source} holds keys of shape "
                      f"{list(keys.shape)}, this run's {list(queue.keys.shape)} (its length is "
                      "queue_fraction of the dataset): it starts with random keys", flush=True)
                continue
            with torch.no_grad():
                queue.keys.copy_(keys)
                queue.ptr.copy_(ptr)
            taken.append(f"{head} queue")
        return taken

    def begin_iteration(self) -> None:
        # Once per iteration, before the phases, as the reference updates D_ema.
        self._momentum_update(self.momentum)

    @torch.no_grad()
    def _momentum_update(self, momentum: float) -> None:
        """D_ema <- momentum * D_ema + (1 - momentum) * D (heads included; buffers copied)."""
        D, D_ema = self.nets.D, self.D_ema
        torch._foreach_lerp_(list(D_ema.parameters()), list(D.parameters()), 1 - momentum)
        for b_ema, b in zip(D_ema.buffers(), D.buffers(), strict=True):
            b_ema.copy_(b)

    # ------------------------------------------------------------------ contrastive terms

    def _view(self, images: torch.Tensor) -> torch.Tensor:
        augment = self.view_augment if self.view_augment is not None else self.nets.augment
        return images if augment is None else augment(images)

    def _contrast(self, head: str, query_images: torch.Tensor, key_images: torch.Tensor,
                  enqueue: str | None) -> torch.Tensor:
        """InfoNCE of D's embedding of one view against D_ema's of the other and the queue.

        Args:
            head: real | fake: which head and queue.
            query_images: images of the query view (before augmentation).
            key_images: images of the positive key view (before augmentation).
            enqueue: what to enqueue afterwards: ``key`` (the keys), ``query`` (the queries'
                features through the momentum head, the reference's fake queue) or None.
        """
        # Both views in one augmentation call (one pass of its resampling, not two).
        views = self._view(torch.cat([query_images, key_images]))
        query_view, key_view = views.split([query_images.shape[0], key_images.shape[0]])
        features = self.nets.D.features(query_view)
        query = self.nets.D.project(features, head)
        with torch.no_grad():
            key = self.D_ema.project(self.D_ema.features(key_view.detach()), head)
        queue = self.queues[head]
        loss = instance_nce(query, key, queue.keys.clone(), self.temperature)
        if enqueue == "key":
            queue.push(gather_keys(key))
        elif enqueue == "query":
            with torch.no_grad():
                queue.push(gather_keys(self.D_ema.project(features.detach(), head)))
        return loss

    def fake_terms(self, network: str, fake: torch.Tensor, gen_z: torch.Tensor,
                   gen_c: torch.Tensor, logs: dict[str, torch.Tensor]) -> torch.Tensor | None:
        if network == "G" and self.fake_on_g_weight > 0:
            # G's diversity term: D (frozen in this phase) should tell G's samples apart; two
            # views of the same fake, the queue only read.
            loss = self._contrast(FAKE_HEAD, fake, fake.detach(), enqueue=None)
            logs["loss/G_fake_cl"] = loss.detach()
            return loss * self.fake_on_g_weight
        if network == "D" and self.fake_weight > 0:
            with torch.no_grad():
                noise = torch.randn_like(gen_z) * self.latent_noise
                positive, _ = self.run_G(gen_z + noise, gen_c)
            loss = self._contrast(FAKE_HEAD, fake, positive, enqueue="query")
            logs["loss/D_fake_cl"] = loss.detach()
            return loss * self.fake_weight
        return None

    def accumulate_gradients(self, phase: str, real: torch.Tensor, real_c: torch.Tensor,
                             gen_z: torch.Tensor, gen_c: torch.Tensor, gain: float
                             ) -> dict[str, torch.Tensor]:
        logs = super().accumulate_gradients(phase, real, real_c, gen_z, gen_c, gain)
        if phase in D_MAIN_PHASES and self.real_weight > 0:
            # A backward of its own: gradients add up, so this equals the reference's single
            # backward of the adversarial and contrastive terms together.
            loss = self._contrast(REAL_HEAD, real.detach(), real.detach(), enqueue="key")
            self.nets.backward(loss * self.real_weight * gain)
            logs["loss/D_real_cl"] = loss.detach()
        return logs
