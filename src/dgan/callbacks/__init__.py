"""Lightning callbacks: adaptive diffusion, metrics, sample images, checkpoints."""
