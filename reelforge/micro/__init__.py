"""The built-in micro model: a small text-to-video diffusion model of moving shapes."""
