"""The loss of Diffusion-ProjectedGAN: hinge for D, -logit for G, no regularisation.

Phases, as in the reference (Projected GAN's ``ProjectedGANLoss``):

- ``Gmain`` / ``Gboth``: G's samples, scored by D with their own labels, should raise D's
  logits: loss -mean(D(G(z))) (the hinge generator loss);
- ``Dmain`` / ``Dboth``: relu(1 + D(fake)) + relu(1 - D(real)), each averaged over D's logits
  (four multi-scale discriminators, every position of their logit maps);
- ``Greg`` / ``Dreg``: nothing. Projected GAN needs neither R1 nor path length, so these phases
  leave no gradient and the module takes no optimizer step for them; a reg interval in the
  config still scales the optimizer's lr and betas, as in the reference (D's reg interval 16).

The diffusion acts inside D, on its feature maps: :meth:`ProjectedGANLoss.run_D` hands the
module's :class:`~dgan.diffusion.feature_noise.FeatureDiffusion` to D as ``feature_noise``
instead of diffusing the pixels, after the image augmentation (DiffAugment in the reference).
D never sees t. The reals' logit signs go to the adaptive update, so p and T adapt as in
Diffusion-StyleGAN2.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from dgan.diffusion.feature_noise import FeatureDiffusion
from dgan.training.losses.base import GANLoss, GANNetworks, real_sign_report

G_MAIN_PHASES = ("Gmain", "Gboth")
D_MAIN_PHASES = ("Dmain", "Dboth")
REG_PHASES = ("Greg", "Dreg")
# The hinge's margin: D is only pushed until real logits reach +1 and fake ones -1.
HINGE_MARGIN = 1.0


def hinge_d_real_loss(real_logits: torch.Tensor) -> torch.Tensor:
    """D's hinge loss on reals: mean relu(1 - D(real))."""
    return F.relu(HINGE_MARGIN - real_logits).mean()


def hinge_d_fake_loss(fake_logits: torch.Tensor) -> torch.Tensor:
    """D's hinge loss on fakes: mean relu(1 + D(fake))."""
    return F.relu(HINGE_MARGIN + fake_logits).mean()


def hinge_g_loss(fake_logits: torch.Tensor) -> torch.Tensor:
    """G's hinge loss: -mean(D(fake))."""
    return -fake_logits.mean()


class ProjectedGANLoss(GANLoss):
    """Hinge GAN loss of Projected GAN, with the diffusion on D's feature maps.

    Takes no arguments: the reference's objective has no weights to set.
    """

    def bind(self, nets: GANNetworks) -> None:
        """Bind the networks; the diffusion must be a feature diffusion (or none).

        A pixel :class:`~dgan.diffusion.process.Diffusion` would be handed a list of feature
        maps; refuse it here, before any training, with a line that says what to choose.
        """
        if nets.diffusion is not None and not isinstance(nets.diffusion, FeatureDiffusion):
            raise ValueError(
                f"ProjectedGANLoss diffuses D's feature maps and needs a "
                f"dgan.diffusion.feature_noise.FeatureDiffusion (diffusion=projected) or "
                f"diffusion=none, got {type(nets.diffusion).__name__}"
            )
        super().bind(nets)

    def regularises(self, network: str) -> bool:
        return False

    # ------------------------------------------------------------------ networks

    def run_G(self, z: torch.Tensor, c: torch.Tensor, update_emas: bool = False
              ) -> torch.Tensor:
        """Generate images of latents ``z`` and labels ``c``.

        Args:
            z: latents [N, z_dim].
            c: labels [N, c_dim].
            update_emas: let G update its tracked averages (StyleGAN2's w_avg); the reference
                does so in D's phase only.
        """
        return self.nets.fast(self.nets.G)(z, c, update_emas=update_emas)

    def run_D(self, x: torch.Tensor, c: torch.Tensor, compiled: bool = True
              ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Augment ``x``, then score it with labels ``c``, the feature diffusion inside D.

        Returns the logits and None: D draws its t per sample and channel internally and is
        not conditioned on them, so there is no t to report.
        """
        nets = self.nets
        D = nets.fast(nets.D) if compiled else nets.D
        if nets.augment is not None:
            x = nets.augment(x)
        return D(x, c, nets.diffusion), None

    # ------------------------------------------------------------------ phases

    def accumulate_gradients(self, phase: str, real: torch.Tensor, real_c: torch.Tensor,
                             gen_z: torch.Tensor, gen_c: torch.Tensor, gain: float
                             ) -> dict[str, torch.Tensor]:
        logs: dict[str, torch.Tensor] = {}
        if phase in REG_PHASES:
            return logs  # no regularisation: no gradient, so no optimizer step
        backward = self.nets.backward
        if phase in G_MAIN_PHASES:
            fake = self.run_G(gen_z, gen_c)
            fake_logits, _ = self.run_D(fake, gen_c)
            loss = hinge_g_loss(fake_logits)
            backward(loss * gain)
            logs["loss/G"] = loss.detach()
        if phase in D_MAIN_PHASES:
            with torch.no_grad():
                fake = self.run_G(gen_z, gen_c, update_emas=True)
            fake_logits, _ = self.run_D(fake, gen_c)
            # The fakes' graph is freed before the reals are scored, as in the reference.
            loss_fake = hinge_d_fake_loss(fake_logits)
            backward(loss_fake * gain)
            real_logits, _ = self.run_D(real.detach(), real_c)
            loss_real = hinge_d_real_loss(real_logits)
            backward(loss_real * gain)
            logs["loss/D"] = loss_fake.detach() + loss_real.detach()
            logs["loss/D_real"] = loss_real.detach()
            logs["D/fake_logits"] = fake_logits.detach().mean()
            logs["D/real_logits"] = real_logits.detach().mean()
            # The feature diffusion acts inside D: only without it are the scored reals clean.
            logs.update(real_sign_report(real_logits, self.nets.diffusion is None))
        return logs
