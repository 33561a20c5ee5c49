"""Every docstring example of the model modules runs as a reader would run it: in a fresh
namespace, with only the imports the example itself makes."""

import ast
import builtins
import doctest
import importlib

import pytest

# Module -> examples it holds: an example dropped or skipped by mistake shows up here.
MODULES = {
    "medgen_tf.models.gan": 17,
    "medgen_tf.models.vae": 19,
    "medgen_tf.models.cyclegan": 21,
    "medgen_tf.models.pix2pix": 5,
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


# What a skipped example may take from the reader: data a docstring cannot ship.
READER_DATA = {
    "fake_images",
    "images",
    "images_dataset",
    "t1",
    "t1_batches",
    "t1_images",
    "t2",
    "t2_batches",
}


def _names(source):
    """``(loaded, bound)``: the names an example reads and those it defines."""
    loaded, bound = set(), set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Name):
            (loaded if isinstance(node.ctx, ast.Load) else bound).add(node.id)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            bound |= {(alias.asname or alias.name).split(".")[0] for alias in node.names}
        elif isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            bound.add(node.name)
    return loaded, bound


@pytest.mark.parametrize("module_name", sorted(MODULES))
def test_skipped_examples_read_only_names_their_docstring_defines_or_the_readers_data(
    module_name,
):
    # A skipped example never runs, so a missing import (tf) hid there.
    module = importlib.import_module(module_name)
    undefined = []
    for test in doctest.DocTestFinder().find(module):
        defined = set(dir(builtins))
        for example in test.examples:
            loaded, bound = _names(example.source)
            if example.options.get(doctest.SKIP):
                missing = loaded - defined - bound - READER_DATA
                undefined += [f"{test.name}: {name}" for name in sorted(missing)]
            defined |= bound
    assert not undefined
