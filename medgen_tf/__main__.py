"""``python -m medgen_tf``: the ``medgen-tf`` command, for when the script is not on PATH."""

import sys

from medgen_tf.cli import main

if __name__ == "__main__":
    sys.exit(main())
