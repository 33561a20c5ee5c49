"""medgen_tf: generative models for medical imaging in Keras 3 / TensorFlow."""

from medgen_tf.config import QUICK, SEED
from medgen_tf.errors import DataError

__version__ = "0.1.0"

__all__ = ["__version__", "DataError", "QUICK", "SEED"]
