"""Training: the LightningModule, its phases, the loss of each GAN family, DDP gradient
reduction and the per-rank state of a checkpoint."""
