"""medgen_tf.viz: display ranges, grids and comparison figures."""

import matplotlib
import numpy as np
import pytest

from medgen_tf import viz

matplotlib.use("Agg")


def test_to_display_picks_the_range_the_data_were_stored_in():
    signed = np.array([-1.0, 0.0, 1.0], dtype=np.float32)
    unit = np.array([0.0, 0.5, 1.0], dtype=np.float32)
    raw = np.array([0, 51, 255], dtype=np.uint8)
    np.testing.assert_allclose(viz.to_display(signed), [0.0, 0.5, 1.0])
    np.testing.assert_allclose(viz.to_display(unit), [0.0, 0.5, 1.0])
    # Raw MedMNIST bytes used to be clipped to an all-white picture.
    np.testing.assert_allclose(viz.to_display(raw), [0.0, 0.2, 1.0])


def test_to_display_clips_to_an_explicit_range_and_refuses_an_empty_one():
    np.testing.assert_allclose(viz.to_display([-2.0, 0.5, 3.0], (0.0, 1.0)), [0.0, 0.5, 1.0])
    # An infinite bound mapped every image to 0 (and -inf, inf to NaN): refused as well.
    for value_range in [(1.0, 1.0), (0.0, float("inf")), (float("-inf"), 1.0)]:
        with pytest.raises(ValueError, match="high > low") as error:
            viz.to_display([0.0, 1.0], value_range)
        assert "\n" not in str(error.value)


def test_image_grid_tiles_row_by_row_with_white_padding():
    images = np.stack([np.full((2, 3, 1), value) for value in (-1.0, 0.0, 1.0)])
    grid = viz.image_grid(images, num_columns=2)
    assert grid.shape == (2 * 2 + 1, 2 * 3 + 1)
    np.testing.assert_allclose(grid[:2, :3], 0.0)  # first image, top left
    np.testing.assert_allclose(grid[:2, 4:], 0.5)  # second, top right
    np.testing.assert_allclose(grid[3:, :3], 1.0)  # third starts the second row
    np.testing.assert_allclose(grid[2, :], 1.0)  # padding between rows
    with pytest.raises(ValueError, match="image_grid: expected"):
        viz.image_grid(np.zeros((2, 4, 4, 2)))


def test_rgb_images_tile_and_save_in_colour(tmp_path):
    # Two 3-channel uint8 images (RGB MedMNIST such as dermamnist): one red, one blue.
    images = np.zeros((2, 3, 4, 3), np.uint8)
    images[0, ..., 0], images[1, ..., 2] = 255, 255
    grid = viz.image_grid(images, num_columns=2)
    assert grid.shape == (3, 2 * 4 + 1, 3)
    np.testing.assert_allclose(grid[:, :4], np.broadcast_to([1.0, 0.0, 0.0], (3, 4, 3)))
    np.testing.assert_allclose(grid[:, 5:], np.broadcast_to([0.0, 0.0, 1.0], (3, 4, 3)))
    np.testing.assert_allclose(grid[:, 4], 1.0)  # white padding

    import matplotlib.image

    path = viz.save_image_grid(images, tmp_path / "rgb.png")
    pixels = matplotlib.image.imread(path)[..., :3]
    reddish = (pixels[..., 0] > 0.9) & (pixels[..., 1] < 0.1) & (pixels[..., 2] < 0.1)
    bluish = (pixels[..., 2] > 0.9) & (pixels[..., 0] < 0.1) & (pixels[..., 1] < 0.1)
    assert reddish.sum() > 100 and bluish.sum() > 100


def test_compare_rows_shows_every_row_on_one_scale():
    # A row that happens to be all >= 0 (an untrained generator's output, say) sits beside a
    # row in [-1, 1]: both must be read as [-1, 1], or 0.5 would be drawn at two grey levels.
    rows = {"real": np.full((2, 4, 4, 1), -1.0), "generated": np.full((2, 4, 4, 1), 0.5)}
    figure = viz.compare_rows(rows)
    shown = [axis.get_images()[0].get_array() for axis in figure.axes]
    np.testing.assert_allclose(shown[0], 0.0)
    np.testing.assert_allclose(shown[2], 0.75)
    figure = viz.compare_rows(rows, value_range=(0.0, 1.0))
    np.testing.assert_allclose(figure.axes[2].get_images()[0].get_array(), 0.5)
    matplotlib.pyplot.close("all")


def test_plot_history_draws_one_panel_per_metric_and_saves(tmp_path):
    figure = viz.plot_history(
        {"d_loss": [1.0, 0.8], "g_loss": [2.0, 1.5], "empty": []}, path=tmp_path / "curves.png"
    )
    assert [axis.get_title() for axis in figure.axes] == ["d_loss", "g_loss"]
    assert (tmp_path / "curves.png").read_bytes().startswith(b"\x89PNG")
    matplotlib.pyplot.close("all")


def test_float_images_on_another_scale_are_shown_on_their_own_range():
    # Float intensities in [0, 255] (or CT numbers) were clipped to (0, 1): an all-white grid.
    raw = np.array([0.0, 51.0, 255.0], dtype=np.float32)
    np.testing.assert_allclose(viz.to_display(raw), [0.0, 0.2, 1.0])
    hounsfield = np.array([-1000.0, 0.0, 1000.0])
    np.testing.assert_allclose(viz.to_display(hounsfield), [0.0, 0.5, 1.0])
    assert viz.default_value_range(raw, np.array([0.0, 510.0])) == (0.0, 510.0)
    # A little tanh or interpolation overshoot keeps the stored scale.
    assert viz.default_value_range(np.array([-1.05, 0.0, 1.02])) == (-1.0, 1.0)


def test_an_empty_image_grid_is_one_line():
    # No images was numpy's "negative dimensions are not allowed".
    with pytest.raises(ValueError, match="no images"):
        viz.image_grid(np.zeros((0, 8, 8, 1)))


def test_compare_rows_without_rows_or_images_is_one_line():
    # No rows was "max() arg is an empty sequence"; rows of no images matplotlib's "Number of
    # columns must be a positive integer, not 0".
    with pytest.raises(ValueError, match="compare_rows needs at least one row"):
        viz.compare_rows({})
    with pytest.raises(ValueError, match="compare_rows needs at least one image"):
        viz.compare_rows({"input": np.zeros((0, 8, 8, 1))})


@pytest.mark.parametrize(
    "options, message",
    [
        ({"num_columns": 0}, "num_columns must be a positive int"),
        ({"num_columns": -2}, "num_columns must be a positive int"),
        ({"num_columns": 2.5}, "num_columns must be a positive int"),
        ({"padding": -1}, "padding must be an int of at least 0"),
    ],
)
def test_image_grid_refuses_columns_or_padding_it_cannot_lay_out(options, message):
    images = np.zeros((4, 8, 8, 1), "float32")
    with pytest.raises(ValueError, match=message):
        viz.image_grid(images, **options)
    assert viz.image_grid(images, num_columns=np.int64(2)).shape == (17, 17)


def test_nan_and_inf_pixels_are_drawn_red_not_white(tmp_path):
    # np.clip keeps NaN and turns Inf into 1: a diverged generator's grid looked like bright,
    # saturated images.
    images = np.zeros((2, 4, 4, 1), np.float32)
    images[1] = np.nan
    images[0, 0, 0, 0] = np.inf
    grid = viz.image_grid(images, value_range=(-1, 1))
    assert np.isnan(grid[0, 0]) and np.isnan(grid[:4, 5:]).all() and grid[1, 1] == 0.5
    path = viz.save_image_grid(images, tmp_path / "grid.png", value_range=(-1, 1))
    picture = matplotlib.image.imread(path)
    red = (picture[..., 0] > 0.9) & (picture[..., 1] < 0.1) & (picture[..., 2] < 0.1)
    assert red.mean() > 0.2
    finite = viz.save_image_grid(np.zeros((2, 4, 4, 1)), tmp_path / "ok.png", value_range=(-1, 1))
    picture = matplotlib.image.imread(finite)
    assert not ((picture[..., 0] > 0.9) & (picture[..., 1] < 0.1)).any()


@pytest.mark.parametrize("shape", [(16, 16, 1), (16, 16, 3)])
def test_one_image_without_a_batch_axis_is_refused_with_the_way_out(shape):
    # (16, 16, 1) was read as 16 images of 16x1 pixels: a grid of one-pixel strips.
    image = np.zeros(shape, np.float32)
    with pytest.raises(ValueError, match=r"image_grid: .* for one image pass images\[None\]"):
        viz.image_grid(image)
    with pytest.raises(ValueError, match=r"compare_rows row 'x': .* pass images\[None\]"):
        viz.compare_rows({"x": image})
    assert viz.image_grid(image[None]).shape == ((16, 16) if shape[-1] == 1 else shape)


def test_a_figure_that_cannot_be_saved_is_closed_and_leaves_no_folder(tmp_path):
    import matplotlib.pyplot as plt

    before = len(plt.get_fignums())
    for index in range(3):
        target = tmp_path / f"missing{index}" / "deeper" / "grid.unknownformat"
        with pytest.raises(ValueError):
            viz.compare_rows({"x": np.zeros((2, 8, 8, 1))}, path=target)
        with pytest.raises(ValueError):
            viz.save_image_grid(np.zeros((2, 8, 8, 1)), target)
    assert len(plt.get_fignums()) == before
    assert list(tmp_path.iterdir()) == []


def test_one_two_dimensional_image_in_compare_rows_is_one_line_and_leaves_no_figure():
    # matplotlib's "Invalid shape (28,) for image data", with a figure left open each time.
    import matplotlib.pyplot as plt

    plt.close("all")
    for _ in range(3):
        with pytest.raises(ValueError) as error:
            viz.compare_rows({"slice": np.zeros((28, 28))})
        assert str(error.value) == (
            "compare_rows row 'slice': expected (n, h, w), (n, h, w, 1) or (n, h, w, 3) images, "
            "got shape (28, 28); for one image pass images[None]"
        )
    with pytest.raises(ValueError, match=r"got shape \(2, 8, 8, 2\)$"):
        viz.image_grid(np.zeros((2, 8, 8, 2)))
    assert plt.get_fignums() == []


def test_a_figure_that_fails_while_drawing_is_closed(monkeypatch):
    import matplotlib.pyplot as plt

    plt.close("all")

    def broken(*args, **kwargs):
        raise RuntimeError("no renderer")

    monkeypatch.setattr(matplotlib.figure.Figure, "tight_layout", broken)
    with pytest.raises(RuntimeError, match="no renderer"):
        viz.compare_rows({"a": np.zeros((2, 8, 8, 1))})
    assert plt.get_fignums() == []


def test_plot_history_takes_the_history_that_fit_returns():
    import keras
    import matplotlib.pyplot as plt

    history = keras.callbacks.History()
    history.history = {"loss": [1.0, 0.5], "val_loss": [1.2, 0.7]}
    figure = viz.plot_history(history)  # was AttributeError: no attribute 'items'
    assert [axis.get_title() for axis in figure.axes] == ["loss", "val_loss"]
    plt.close(figure)


def test_an_array_value_range_is_taken_as_a_range():
    # "value_range or ..." raised numpy's "truth value of an array ... is ambiguous".
    images = np.full((1, 4, 4), 128.0)
    shown = viz.to_display(images, value_range=np.array([0.0, 256.0]))
    np.testing.assert_allclose(shown, 0.5)
    assert viz.image_grid(images, value_range=np.array([0.0, 256.0])).max() == pytest.approx(0.5)
