"""Everything that turns files into arrays and tf.data pipelines.

- :func:`brain_slices`: paired slices of the simulated multi-contrast brain cohort.
- :func:`load_volume`: one NIfTI file as a canonical (RAS) float32 volume and its affine.
- :func:`load_spec`: any data spec (``brain[:t1]``, ``nifti:PATH``, ``medmnist:NAME[@SIZE]``,
  ``tfds:NAME``) as images and labels.
- :func:`preview_grid`: a labelled PNG grid of a data spec.
- :func:`make_dataset`: numpy arrays to a shuffled, batched ``tf.data.Dataset``.
"""

from medgen_tf.data.brain import brain_slices, subject_volumes
from medgen_tf.data.nifti import load_nifti_slices, load_volume
from medgen_tf.data.pipeline import make_dataset, steps_per_epoch
from medgen_tf.data.spec import load_domains, load_spec, preview_grid

__all__ = [
    "brain_slices",
    "load_domains",
    "load_nifti_slices",
    "load_spec",
    "load_volume",
    "make_dataset",
    "preview_grid",
    "steps_per_epoch",
    "subject_volumes",
]
