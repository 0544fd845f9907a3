"""Convert image sources into the zip layout that :class:`dgan.data.images.ImageDataset` reads.

    python -m dgan.data.prepare --source=SRC --dest=DEST.zip [--resolution=N]
        [--transform=center-crop|center-crop-wide|resize] [--crop-height=N] [--max-images=N]
        [--split=...] [--labels-from-folders]

Sources:

- a folder (searched recursively) or zip of images: each image is center-cropped to a square
  (or, with ``--transform=resize``, stretched) and resized to ``--resolution`` (default: the
  largest power of two that every image reaches). Labels come from a ``dataset.json`` in the
  source, or with ``--labels-from-folders`` from the top-level subfolder names (sorted: the first
  folder is class 0).
- ``cifar-10-python.tar.gz`` (or its extracted ``cifar-10-batches-py`` folder): the five training
  batches, or the test batch with ``--split=test``; 32 px unless ``--resolution`` says otherwise.
- ``stl10_binary.tar.gz`` (or its extracted ``stl10_binary`` folder): ``--split=unlabeled``
  (default, the 100,000 images GAN papers train on), ``train`` or ``test`` (with labels, 1..10
  stored, 0..9 written) or ``train+unlabeled``; resized from 96 px to ``--resolution`` (default 64).
- ``digits``: scikit-learn's embedded 8x8 digits, upscaled to ``--resolution`` (default 32).
- an LMDB export of LSUN (``bedroom_train_lmdb``, ``church_outdoor_train_lmdb``, ...: a folder
  holding ``data.mdb``; needs the ``lmdb`` package): every value is an encoded image (webp, jpeg,
  png), read in key order, made square by ``--transform`` at ``--resolution`` (default 256, the
  short side of LSUN's images), always RGB; no labels. Values that do not decode are skipped, as
  in the reference's dataset tool, and counted in the summary line.

``--transform=center-crop-wide`` (folders and LMDB) is the reference dataset tool's wide crop: a
horizontal band of ``round(resolution * h / w)`` source rows over the full width is resized to
``resolution`` x ``--crop-height`` (default: the resolution) and centred on a black square.
Images narrower than the resolution, or whose band is shorter than ``--crop-height``, are
skipped and counted; with the default height that is every image wider than it is tall, as with
the reference's ``--width=256 --height=256``.

The output is the StyleGAN2-ADA layout: ``00000/img00000000.png``, ... and ``dataset.json`` with
``{"labels": [[name, class], ...]}`` (or null). ``--max-images`` reads only the first N images
(or LMDB entries) in source order, as the reference's option does: any of those skipped are
counted in the summary and not replaced, so fewer than N may be written.

Every source image is checked (PIL's integrity check) and fully decoded before it is written, so
a truncated or damaged file stops the run with one line naming it; its mode is converted to 8
bits as the dataset reads it (:func:`dgan.data.images.image_to_uint8`: 16-bit and float images
are scaled, not clipped) before any crop or resize. The zip is written to a temporary file next
to ``--dest``, then every image in it is decoded again and compared with what was meant to be
written, and only then is it renamed over ``--dest``: a failed or interrupted run never leaves a
half-written dataset behind, and an existing ``--dest`` stays as it was. The new file gets the
usual permissions (0666 less the umask, like any file the user creates).
"""

from dgan.data.prepare.command import main, prepare
from dgan.data.prepare.source import PrepareError, PrepareSummary
from dgan.data.prepare.transforms import center_crop_wide, to_square

__all__ = ["PrepareError", "PrepareSummary", "center_crop_wide", "main", "prepare", "to_square"]
