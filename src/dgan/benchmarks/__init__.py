"""Speed and memory measurements behind python -m dgan.bench and dgan.bench_gpu."""
