"""Frames written as an MP4 (through imageio and the ffmpeg binary imageio-ffmpeg ships) or as
numbered PNGs.

MP4 needs the optional extra ``video`` (``pip install 'dgan[video]'``); PNG frames need nothing
beyond Pillow. :func:`check_mp4` says in one line what is missing before any frame is made.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import torch

from dgan.core.errors import ConfigError
from dgan.files.atomic import atomic_path
from dgan.files.pictures import save_png

MP4 = "mp4"
PNG = "png"
VIDEO_FORMATS = (MP4, PNG)
# H.264 (what every player reads), with the reference's bitrate.
MP4_CODEC = "libx264"
MP4_BITRATE = "16M"
# yuv420p needs even sides; power-of-two images already have them, so frames are never resized.
MP4_BLOCK = 2
FRAME_NAME = "frame{index:05d}.png"
INSTALL_HINT = "pip install 'dgan[video]' (imageio and imageio-ffmpeg)"


def mp4_problem() -> str | None:
    """Why MP4 cannot be written here (a missing package), or None when it can."""
    try:
        import imageio  # noqa: F401
        import imageio_ffmpeg
    except ImportError as err:
        return f"{err.name} is not installed"
    try:
        imageio_ffmpeg.get_ffmpeg_exe()
    except RuntimeError as err:  # the package is there but its ffmpeg binary is not
        return f"imageio-ffmpeg finds no ffmpeg binary ({err})"
    return None


def check_mp4(key: str, value: str, alternative: str) -> None:
    """One error line when ``key=value`` asks for an MP4 that cannot be written.

    Args:
        key: the argument that asked for the video (``format``, ``save_video``).
        value: its value, as given.
        alternative: what to give instead to get PNG frames or no video.
    """
    problem = mp4_problem()
    if problem is not None:
        raise ConfigError(f"{key}={value}: an MP4 needs imageio and imageio-ffmpeg, but "
                          f"{problem}; {INSTALL_HINT}, or give {alternative}")


def _rgb_frame(frame: torch.Tensor) -> torch.Tensor:
    """uint8 [C, H, W] -> [H, W, 3] (grey images repeated: H.264 encodes colour frames)."""
    if frame.dtype != torch.uint8 or frame.ndim != 3:
        raise ValueError(f"frames must be uint8 [C, H, W], got {frame.dtype} {list(frame.shape)}")
    if frame.shape[0] == 1:
        frame = frame.repeat(3, 1, 1)
    return frame.permute(1, 2, 0).contiguous()


def write_mp4(frames: Iterable[torch.Tensor], path: str | Path, fps: float) -> Path:
    """Encode uint8 [C, H, W] frames as an H.264 MP4 at ``fps``; the file appears complete or
    not at all.

    Args:
        frames: the frames, all the same size.
        path: the ``.mp4`` file.
        fps: frames per second.
    """
    import imageio

    path = Path(path)
    with atomic_path(path, suffix=".mp4") as tmp:
        writer = imageio.get_writer(tmp, format="FFMPEG", mode="I", fps=fps, codec=MP4_CODEC,
                                    bitrate=MP4_BITRATE, macro_block_size=MP4_BLOCK)
        try:
            for frame in frames:
                writer.append_data(_rgb_frame(frame).numpy())
        finally:
            writer.close()
    return path


def write_png_frames(frames: Iterable[torch.Tensor], outdir: str | Path) -> list[Path]:
    """``frame00000.png``, ``frame00001.png``, ... in ``outdir``; returns their paths.

    Args:
        frames: uint8 [C, H, W] frames.
        outdir: an existing directory.
    """
    return [save_png(frame, Path(outdir) / FRAME_NAME.format(index=index))
            for index, frame in enumerate(frames)]
