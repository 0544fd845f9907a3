"""Does D still tell the classes, and the timesteps, apart? The cosines of its head, per tick.

With the reference's encoding (``t_conditioning=raw``) the class label and t share one
embedding, so at t > 0 the conditioning vectors of two classes are nearly parallel and a
conditional D is, on every diffused sample, almost unconditional; and every t > 0 gives nearly
the same vector. :func:`dgan.networks.conditioning.conditioning_cosines` measures both; the
diffusion diagnostics append its rows to ``diagnostics/conditioning.csv`` at each of their
evaluations, so the file shows how training moves them.
"""

from __future__ import annotations

from typing import Any

from torch import nn

from dgan.networks.conditioning import TimestepConditioning, conditioning_cosines

CONDITIONING_FILE = "conditioning.csv"
# kind: "class" (t_a == t_b: mean cosine over pairs of classes at that t) or "t" (cosine
# between the vectors of t_a and t_b, averaged over the classes).
CONDITIONING_COLUMNS = ["kimg", "kind", "t_a", "t_b", "cosine"]


def conditioning_rows(D: nn.Module, kimg: float) -> list[list[Any]]:
    """The rows of ``D``'s head at ``kimg``; none for a D without a conditioning head (one
    that takes neither t nor labels, or ProjectedGAN's, which is not told t).

    Args:
        D: the discriminator (a DDP or compile wrapper is looked through).
        kimg: training progress written in each row.
    """
    net = getattr(D, "module", D)
    net = getattr(net, "_orig_mod", net)
    head = getattr(net, "head", None)
    if not isinstance(head, TimestepConditioning):
        return []
    return [[round(kimg, 3), kind, a, b, cos] for kind, a, b, cos in conditioning_cosines(head)]
