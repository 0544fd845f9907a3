"""Generator and discriminator networks: toy MLPs and StyleGAN2."""
