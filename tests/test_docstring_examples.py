"""Every docstring example of the model modules runs as a reader would run it: in a fresh
namespace, with only the imports the example itself makes."""

import doctest
import importlib

import pytest

# Module -> examples it holds: an example dropped or skipped by mistake shows up here.
MODULES = {
    "medgen_tf.models.gan": 17,
    "medgen_tf.models.vae": 19,
    "medgen_tf.models.cyclegan": 20,
    "medgen_tf.models.pix2pix": 4,
    "medgen_tf.models.layers": 12,
}


@pytest.mark.parametrize("module_name", sorted(MODULES))
def test_docstring_examples_run_in_a_fresh_namespace(module_name):
    module = importlib.import_module(module_name)
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
    failures = []
    for test in doctest.DocTestFinder().find(module):
        test.globs = {}  # not the module's globals: nothing the example does not import
        output = []
        if runner.run(test, out=output.append).failed:
            failures.append(f"{test.name}:\n{''.join(output)[-1500:]}")
    assert not failures, "\n".join(failures)
    assert runner.tries == MODULES[module_name]
