"""Files a run reads and writes: the atomic writer, pictures, the metrics log and
checkpoints."""
