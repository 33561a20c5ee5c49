"""Tests for medgen_tf.augmentation (the lesion task, classifier, runner) and the AUROC and
balanced-accuracy metrics it reports."""

import itertools
import math

import keras
import numpy as np
import pytest

from medgen_tf import DataError
from medgen_tf.augmentation import (
    CONDITIONS,
    RandomGamma,
    RandomSignalGain,
    add_lesions,
    build_augmenter,
    build_classifier,
    classifier_logits,
    evaluate_classifier,
    format_paired_differences,
    format_results,
    lesion_detection_data,
    lesion_detection_splits,
    lesion_effect,
    paired_differences,
    run_experiment,
    summarize,
    synthetic_lesion_samples,
    train_classifier,
    train_conditional_gan,
)
from medgen_tf.data.brain import brain_slices
from medgen_tf.metrics import auroc, balanced_accuracy

TINY = dict(image_size=16, num_subjects=8, slices_per_subject=8)
# Radii of at least one pixel plus the edge, so every lesion has a non-empty core at 16 px.
LESIONS = dict(TINY, radius_range=(1.2, 2.0))


@pytest.fixture(scope="module")
def splits():
    return lesion_detection_splits(train_prevalence=0.1, test_prevalence=0.5, seed=3, **LESIONS)


def test_splits_are_disjoint_by_subject(splits):
    subjects = {name: set(split["subject"].tolist()) for name, split in splits.items()}
    for first, second in itertools.combinations(subjects, 2):
        assert not subjects[first] & subjects[second], (first, second)
    assert len(subjects["train"]) == 6 and len(subjects["test"]) == 1


def test_prevalence_is_as_requested(splits):
    train, test = splits["train"], splits["test"]
    assert train["labels"].sum() == round(0.1 * len(train["labels"])) == 5
    assert test["labels"].sum() == round(0.5 * len(test["labels"]))
    assert lesion_detection_data("train", 0.0, **LESIONS)["labels"].sum() == 0


def test_same_seed_same_task_other_seed_other_lesions(splits):
    again = lesion_detection_data("train", 0.1, seed=3, **LESIONS)
    np.testing.assert_array_equal(again["images"], splits["train"]["images"])
    np.testing.assert_array_equal(again["labels"], splits["train"]["labels"])
    other = lesion_detection_data("train", 0.1, seed=4, **LESIONS)
    assert not np.array_equal(other["images"], again["images"])


def test_lesions_lie_inside_the_brain_and_change_only_positive_slices(splits):
    train = splits["train"]
    clean = brain_slices(("t2",), split="train", return_labels=True, **TINY)["t2"]
    changed = np.abs(train["images"] - clean)[..., 0] > 1e-6
    positive = train["labels"] == 1
    assert not changed[~positive].any()
    for index in np.flatnonzero(positive):
        assert changed[index].sum() >= 3
        assert not (changed[index] & ~train["brain_mask"][index]).any()
        assert train["lesion_mask"][index].any()
        assert not (train["lesion_mask"][index] & ~train["brain_mask"][index]).any()
        # The core is replaced by one lesion intensity from the default range.
        core_values = train["images"][index, ..., 0][train["lesion_mask"][index]]
        np.testing.assert_allclose(core_values, core_values[0], atol=1e-6)
        assert 0.35 <= core_values[0] <= 0.75
    assert not train["lesion_mask"][~positive].any()


def test_room_marks_the_slices_deep_enough_for_the_largest_lesion():
    from scipy import ndimage

    # At 8 px only a few slices are deep enough, so "room" is neither all nor none.
    small = dict(LESIONS, image_size=8)
    data = lesion_detection_data("train", 0.0, **small)
    depth = np.array([ndimage.distance_transform_edt(mask).max() for mask in data["brain_mask"]])
    expected = depth >= LESIONS["radius_range"][1] + 1.0
    assert data["room"].dtype == bool and 0 < expected.sum() < len(expected)
    np.testing.assert_array_equal(data["room"], expected)
    # As many positives as slices with room: every one of them, and no other, gets a lesion.
    full = lesion_detection_data("train", expected.sum() / len(expected), **small)
    np.testing.assert_array_equal(full["labels"] == 1, expected)
    with pytest.raises(DataError, match="room for a lesion"):
        lesion_detection_data("train", 1.0, **small)


def test_slices_without_room_are_always_negative(splits):
    for split in splits.values():
        assert not split["room"].all()  # some slices lack room, so the check below bites
        assert split["room"][split["labels"] == 1].all()


def test_add_lesions_refuses_a_brain_too_small():
    images = np.zeros((1, 16, 16, 1), np.float32)
    mask = np.zeros((1, 16, 16), np.float32)
    mask[0, 7:9, 7:9] = 1.0
    with pytest.raises(DataError, match="too small"):
        add_lesions(images, mask, [1], radius_range=(2.0, 3.0))


def _brute_force_auroc(labels, scores):
    positives, negatives = scores[labels == 1], scores[labels == 0]
    wins = [1.0 if p > n else 0.5 if p == n else 0.0 for p in positives for n in negatives]
    return float(np.mean(wins))


def test_auroc_matches_brute_force_pairs_with_ties():
    rng = np.random.default_rng(0)
    for _ in range(5):
        labels = rng.integers(0, 2, 60)
        labels[:2] = [0, 1]
        scores = np.round(rng.normal(labels * 0.7, 1.0), 1)  # rounding makes ties
        assert auroc(labels, scores) == pytest.approx(_brute_force_auroc(labels, scores), abs=1e-12)
        # Any increasing transform (logit -> probability) leaves it unchanged.
        assert auroc(labels, 1 / (1 + np.exp(-scores))) == pytest.approx(auroc(labels, scores))
    assert auroc([0, 0, 1, 1], [0.1, 0.2, 0.3, 0.4]) == 1.0
    assert auroc([0, 0, 1, 1], [0.4, 0.3, 0.2, 0.1]) == 0.0
    assert auroc([0, 1, 0, 1], [0.5, 0.5, 0.5, 0.5]) == 0.5
    with pytest.raises(ValueError, match="one positive and one negative"):
        auroc([1, 1], [0.2, 0.3])


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_auroc_refuses_non_finite_scores(bad):
    # rankdata propagates NaN: one diverged logit used to make the AUROC NaN, silently.
    scores = np.array([0.1, 0.4, bad, 0.8])
    with pytest.raises(ValueError, match="scores: 1 NaN or Inf values") as raised:
        auroc([0, 0, 1, 1], scores)
    assert "\n" not in str(raised.value)


def test_evaluate_classifier_refuses_a_diverged_classifier():
    model = build_classifier(16, base_filters=4)
    weights = model.get_weights()
    weights[-1][:] = np.nan  # the output bias: every logit NaN, as after a diverged training
    model.set_weights(weights)
    images = np.random.default_rng(0).uniform(-1, 1, (6, 16, 16, 1)).astype("float32")
    # NaN > 0 is False: the logits used to read as six "negatives", balanced accuracy 0.5.
    with pytest.raises(ValueError, match="classifier logits: 6 NaN or Inf values") as raised:
        evaluate_classifier(model, images, [0, 1, 0, 1, 0, 1])
    assert "\n" not in str(raised.value)


def test_balanced_accuracy_is_the_mean_recall():
    labels = np.array([0] * 90 + [1] * 10)
    assert balanced_accuracy(labels, np.zeros(100)) == 0.5  # 90 % accuracy, no skill
    predictions = labels.copy()
    predictions[:9] = 1  # specificity 0.9
    predictions[-5:] = 0  # sensitivity 0.5
    assert balanced_accuracy(labels, predictions) == pytest.approx(0.7)


def test_classifier_outputs_one_logit_and_augmenter_acts_only_in_training():
    model = build_classifier(16, base_filters=4)
    images = np.random.default_rng(0).uniform(-1, 1, (4, 16, 16, 1)).astype("float32")
    assert model(images).shape == (4, 1)
    # Batched eager logits equal Keras' predict, whatever the batch size.
    expected = model.predict(images, verbose=0).reshape(-1)
    np.testing.assert_allclose(classifier_logits(model, images, batch_size=3), expected, atol=1e-5)
    augmenter = build_augmenter(seed=0)
    np.testing.assert_allclose(np.asarray(augmenter(images, training=False)), images)
    augmented = np.asarray(augmenter(images, training=True))
    assert augmented.shape == images.shape
    assert not np.allclose(augmented, images)
    assert augmented.min() >= -1.0 - 1e-6 and augmented.max() <= 1.0 + 1e-6


def test_conditional_gan_samples_have_the_requested_class(splits):
    train = splits["train"]
    gan = train_conditional_gan(
        train["images"], train["labels"], num_epochs=1, latent_dim=8, base_filters=4, batch_size=8
    )
    images, labels = synthetic_lesion_samples(gan, 5, seed=1)
    assert images.shape == (5, 16, 16, 1) and (labels == 1).all()
    assert np.isfinite(images).all() and images.min() >= -1 and images.max() <= 1
    # `labels` only echoes the argument: the images must come from the generator conditioned on
    # class 1 (same noise), and differ from class 0's, or a wrong class would pass.
    lesion = np.clip(gan.generate(5, seed=1, labels=np.ones(5, np.int32)), -1, 1)
    np.testing.assert_array_equal(images, lesion)
    normal = np.clip(gan.generate(5, seed=1, labels=np.zeros(5, np.int32)), -1, 1)
    assert np.abs(images - normal).max() > 1e-3


def test_runner_gives_finite_metrics_for_every_condition(splits, monkeypatch):
    import medgen_tf.augmentation as module

    # What each condition trains and is scored on. Row counts alone passed a runner that never
    # augmented, repeated negatives as "positives", labelled the cGAN's slices 0, or scored the
    # classifiers on their own training set.
    trained, scored = [], []
    original_train, original_evaluate = module.train_classifier, module.evaluate_classifier

    def recording_train(images, labels, *args, augment=False, **kwargs):
        trained.append((np.array(images), np.array(labels), augment))
        return original_train(images, labels, *args, augment=augment, **kwargs)

    def recording_evaluate(model, images, labels):
        scored.append((np.array(images), np.array(labels)))
        return original_evaluate(model, images, labels)

    monkeypatch.setattr(module, "train_classifier", recording_train)
    monkeypatch.setattr(module, "evaluate_classifier", recording_evaluate)
    rows = run_experiment(
        splits["train"],
        splits["test"],
        seeds=(0,),
        num_epochs=1,
        gan_epochs=1,
        batch_size=8,
        gan_kwargs=dict(latent_dim=8, base_filters=4),
        classifier_kwargs=dict(base_filters=4),
    )
    assert [row["condition"] for row in rows] == list(CONDITIONS)
    num_negative = int((splits["train"]["labels"] == 0).sum())
    for row in rows:
        assert np.isfinite(row["balanced_accuracy"]) and 0 <= row["auroc"] <= 1
        if CONDITIONS[row["condition"]][0]:  # balanced: as many positives as negatives
            assert row["num_train"] == 2 * num_negative
        else:
            assert row["num_synthetic"] == 0
    real_images, real_labels = splits["train"]["images"], splits["train"]["labels"]
    by_condition = dict(zip(CONDITIONS, trained, strict=True))
    for name, (images, labels, augment) in by_condition.items():
        balance, augmented = CONDITIONS[name]
        assert augment == augmented, name
        np.testing.assert_array_equal(images[: len(real_labels)], real_images, err_msg=name)
        np.testing.assert_array_equal(labels[: len(real_labels)], real_labels, err_msg=name)
        added_images, added_labels = images[len(real_labels) :], labels[len(real_labels) :]
        if balance is None:
            assert len(added_labels) == 0, name
            continue
        assert (added_labels == 1).all() and (labels == 1).sum() == num_negative, name
        # The repeat control adds copies of real positive slices; the cGAN new slices.
        distances = np.abs(added_images[:, None] - real_images[None]).max(axis=(2, 3, 4))
        nearest = distances.argmin(axis=1)
        if balance == "repeat":
            assert (distances.min(axis=1) == 0).all() and (real_labels[nearest] == 1).all()
        else:
            assert (distances.min(axis=1) > 0).all(), name
    np.testing.assert_array_equal(by_condition["both"][0], by_condition["real + cGAN"][0])
    assert len(scored) == len(CONDITIONS)
    for images, labels in scored:
        np.testing.assert_array_equal(images, splits["test"]["images"])
        np.testing.assert_array_equal(labels, splits["test"]["labels"])
    table = format_results(rows)
    assert all(name in table for name in CONDITIONS)
    with pytest.raises(ValueError, match="unknown condition"):
        run_experiment(splits["train"], splits["test"], conditions=("mixup",))


def test_balancing_without_training_positives_is_refused(splits):
    negative = splits["train"]["labels"] == 0
    train = {name: splits["train"][name][negative] for name in ("images", "labels")}
    small = dict(seeds=(0,), num_epochs=1, gan_epochs=1, batch_size=8)
    small.update(gan_kwargs=dict(latent_dim=8), classifier_kwargs=dict(base_filters=4))
    # Repeating no positives used to pad the set with copies of a negative slice, silently.
    for condition in ("real, positives repeated", "real + cGAN", "both"):
        with pytest.raises(DataError, match="no positive slice") as raised:
            run_experiment(train, splits["test"], conditions=("real only", condition), **small)
        assert "\n" not in str(raised.value)


def test_summary_reports_mean_and_sample_std_over_seeds():
    rows = [
        {"condition": "real only", "seed": seed, "balanced_accuracy": value, "auroc": value}
        for seed, value in enumerate([0.5, 0.7, 0.9])
    ]
    mean, spread = summarize(rows)["real only"]["auroc"]
    assert mean == pytest.approx(0.7) and spread == pytest.approx(0.2)
    assert "0.700 ± 0.200" in format_results(rows)
    # No rows (no seeds or no conditions) used to fail as "TypeError: 'int' object is not iterable".
    with pytest.raises(ValueError, match="no rows to format"):
        format_results([])


def test_one_seed_gives_a_zero_spread_and_no_interval_and_two_seeds_give_both(recwarn):
    # Quick mode runs one seed: the spread is 0 and the interval NaN, with no numpy warning
    # ("Degrees of freedom <= 0") on the way.
    rows = [
        {"condition": name, "seed": 0, "balanced_accuracy": value, "auroc": value}
        for name, value in (("real only", 0.6), ("repeat", 0.8))
    ]
    assert summarize(rows)["repeat"]["auroc"] == (0.8, 0.0)
    assert "0.800 ± 0.000" in format_results(rows)
    difference = paired_differences(rows)["repeat"]
    assert difference["seeds"] == 1 and difference["mean"] == pytest.approx(0.2)
    assert np.isnan(difference["low"]) and np.isnan(difference["high"])
    assert not [warning for warning in recwarn if issubclass(warning.category, RuntimeWarning)]
    # Two seeds are enough for a spread and an interval (1 degree of freedom: t = 12.706).
    rows += [
        {"condition": name, "seed": 1, "balanced_accuracy": value, "auroc": value}
        for name, value in (("real only", 0.7), ("repeat", 1.0))
    ]
    assert summarize(rows)["repeat"]["auroc"] == pytest.approx((0.9, 0.2 / 2**0.5))
    difference = paired_differences(rows)["repeat"]
    half = 12.7062 * (0.1 / 2**0.5) / 2**0.5
    assert (difference["low"], difference["high"]) == pytest.approx((0.25 - half, 0.25 + half))


def test_augmented_training_is_reproducible_by_seed():
    rng = np.random.default_rng(0)
    images = rng.uniform(-1, 1, (64, 16, 16, 1)).astype("float32")
    labels = (rng.uniform(size=64) < 0.3).astype("int32")

    def weights(seed):
        model = train_classifier(
            images, labels, 2, batch_size=16, seed=seed, augment=True, base_filters=4
        )
        return np.concatenate([value.reshape(-1) for value in model.get_weights()])

    np.testing.assert_array_equal(weights(0), weights(0))
    assert not np.array_equal(weights(0), weights(1))


def _total_steps(model):
    return int(keras.ops.convert_to_numpy(model.optimizer.iterations))


def test_train_classifier_takes_steps_per_epoch_times_epochs():
    rng = np.random.default_rng(0)
    images = rng.uniform(-1, 1, (40, 16, 16, 1)).astype("float32")
    labels = (np.arange(40) % 4 == 0).astype("int32")
    small = dict(batch_size=8, base_filters=4)
    # Default: one pass per epoch, ceil(40 / 8) = 5 steps.
    assert _total_steps(train_classifier(images, labels, 3, **small)) == 15
    # Fewer steps than a pass, and more than a pass (the stream then runs over several passes).
    assert _total_steps(train_classifier(images, labels, 3, steps_per_epoch=2, **small)) == 6
    assert _total_steps(train_classifier(images, labels, 3, steps_per_epoch=7, **small)) == 21


class _RowRecorder(keras.Model):
    """Counts how often each row is trained on; a row's id is the value of its first pixel."""

    def __init__(self, num_rows):
        super().__init__()
        self.num_rows = num_rows
        self.dense = keras.layers.Dense(1)
        self.counts = self.add_weight(shape=(num_rows,), initializer="zeros", trainable=False)

    def call(self, images):
        return self.dense(keras.ops.reshape(images, (keras.ops.shape(images)[0], -1)))

    def train_step(self, data):
        import tensorflow as tf

        ids = tf.cast(tf.round(data[0][:, 0, 0, 0]), tf.int32)
        self.counts.assign_add(tf.reduce_sum(tf.one_hot(ids, self.num_rows), axis=0))
        return {"rows_seen": tf.reduce_sum(self.counts)}  # fit needs at least one output


def test_fixed_steps_run_through_the_whole_set_across_epochs(monkeypatch):
    # 12 rows in batches of 2 is 6 batches a pass; 2 steps an epoch for 6 epochs is 12 batches.
    # Keras 3 keeps one iterator across epochs, so the epochs take consecutive chunks of the
    # stream and every row is seen twice; a dataset restarted each epoch would feed only the
    # first 4 rows of one order, 6 times over.
    images = np.broadcast_to(np.arange(12, dtype="float32")[:, None, None, None], (12, 4, 4, 1))
    labels = np.zeros(12, "int32")
    monkeypatch.setattr(
        "medgen_tf.augmentation.build_classifier", lambda *args, **kwargs: _RowRecorder(12)
    )
    model = train_classifier(images, labels, 6, batch_size=2, steps_per_epoch=2)
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(model.counts), np.full(12, 2.0))


def test_every_condition_gets_the_real_sets_number_of_steps(splits, monkeypatch):
    import medgen_tf.augmentation as module

    steps, original = {}, module.train_classifier

    def recording(images, labels, *args, **kwargs):
        model = original(images, labels, *args, **kwargs)
        steps[len(labels)] = _total_steps(model)
        return model

    monkeypatch.setattr(module, "train_classifier", recording)
    train = splits["train"]
    run_experiment(
        train,
        splits["test"],
        seeds=(0,),
        conditions=("real only", "classic augmentation", "real, positives repeated"),
        num_epochs=2,
        batch_size=8,
        classifier_kwargs=dict(base_filters=4),
    )
    num_real = len(train["labels"])  # 48 slices, 5 positives: the control has 86
    assert sorted(steps) == [num_real, 2 * int((train["labels"] == 0).sum())]
    # 2 epochs of ceil(48 / 8) = 6 steps, whatever the set's size (86 slices: 11 a pass).
    assert set(steps.values()) == {2 * math.ceil(num_real / 8)} == {12}


def test_paired_differences_match_a_hand_computation():
    baseline = [0.60, 0.70, 0.65]
    other = [0.50, 0.62, 0.63]  # differences -0.10, -0.08, -0.02
    rows = [
        {"condition": name, "seed": seed, "auroc": value, "balanced_accuracy": 0.5}
        for name, values in (("real only", baseline), ("classic augmentation", other))
        for seed, value in enumerate(values)
    ]
    # Mean -0.2 / 3; sample sd sqrt(((-0.1 + 0.2/3)^2 + (-0.08 + 0.2/3)^2 + (-0.02 + 0.2/3)^2) / 2)
    # = 0.041633; t(0.975, df 2) = 4.302653 (a t table); half width 4.302653 * 0.041633 / sqrt(3).
    mean, half = -0.2 / 3, 4.302653 * 0.0416333 / math.sqrt(3)
    entry = paired_differences(rows)["classic augmentation"]
    np.testing.assert_allclose(entry["per_seed"], [-0.10, -0.08, -0.02], atol=1e-12)
    assert entry["seeds"] == 3 and entry["mean"] == pytest.approx(mean)
    assert entry["low"] == pytest.approx(mean - half, abs=1e-5)  # -0.170087
    assert entry["high"] == pytest.approx(mean + half, abs=1e-5)  # +0.036754: crosses 0
    # Rows of a seed missing from the baseline are left out of the pairs.
    rows.append({"condition": "classic augmentation", "seed": 7, "auroc": 0.9})
    assert paired_differences(rows)["classic augmentation"]["seeds"] == 3
    table = format_paired_differences(rows)
    assert "-0.067" in table and "[-0.170, +0.037]" in table
    single = paired_differences(rows[:1] + rows[3:4])["classic augmentation"]
    assert single["seeds"] == 1 and np.isnan(single["low"]) and np.isnan(single["high"])
    assert "n/a (one seed)" in format_paired_differences(rows[:1] + rows[3:4])
    with pytest.raises(ValueError, match="baseline"):
        paired_differences(rows, baseline="both")


def test_lesion_effect_is_the_mean_change_of_each_positive_slice():
    data = lesion_detection_data("train", 0.1, seed=3, **LESIONS)
    clean = brain_slices(("t2",), split="train", return_labels=True, **TINY)["t2"]
    positive = np.flatnonzero(data["labels"] == 1)
    expected = [np.abs(data["images"][i] - clean[i]).mean() for i in positive]
    effect = lesion_effect("train", 0.1, seed=3, **LESIONS)
    np.testing.assert_allclose(effect, expected, rtol=1e-6)
    assert len(effect) == 5 and (effect > 0).all()


@pytest.mark.parametrize("confidence", [95, 0.0, 1.0, float("nan")])
def test_paired_differences_refuse_a_confidence_outside_0_1(confidence):
    rows = [
        {"condition": name, "seed": seed, "auroc": value}
        for name, values in (("real only", [0.6, 0.7, 0.65]), ("both", [0.5, 0.62, 0.63]))
        for seed, value in enumerate(values)
    ]
    # confidence=95 (a percentage) gave an interval of NaN bounds, printed as "[+nan, +nan]";
    # 1.0 gave (-inf, inf).
    with pytest.raises(ValueError, match="confidence must be in"):
        paired_differences(rows, confidence=confidence)
    with pytest.raises(ValueError, match="confidence must be in"):
        format_paired_differences(rows, confidence=confidence)


@pytest.mark.parametrize(
    "num_negative, num_positive", [(12, 4), (3, 10), (5, 5)], ids=["rare", "common", "even"]
)
def test_conditional_gan_balancing_repeats_only_the_rarer_class(
    num_negative, num_positive, monkeypatch
):
    fed = {}
    # Records what the GAN would be trained on; training itself is not what is tested.
    monkeypatch.setattr(
        "medgen_tf.training.fit", lambda model, data, run_dir, **kwargs: fed.update(data=data)
    )
    labels = np.array([0] * num_negative + [1] * num_positive)
    # Each slice's value is its index, so the rows fed can be traced back to real slices.
    images = np.broadcast_to(
        np.arange(len(labels), dtype="float32")[:, None, None, None], (len(labels), 16, 16, 1)
    )
    train_conditional_gan(images, labels, num_epochs=1, latent_dim=8, base_filters=4)
    fed_images, fed_labels = fed["data"]
    majority = max(num_negative, num_positive)
    # 3 negatives and 10 positives used to train on 3 of each, dropping 7 real positives.
    assert (fed_labels == 0).sum() == (fed_labels == 1).sum() == majority
    rows = fed_images[:, 0, 0, 0].astype(int)
    np.testing.assert_array_equal(labels[rows], fed_labels)  # each row keeps its own label
    assert set(rows) == set(range(len(labels)))  # every real slice of both classes is kept


@pytest.mark.parametrize("label, missing", [(0, "no positive slice"), (1, "no negative slice")])
def test_conditional_gan_refuses_a_single_class(label, missing):
    images = np.zeros((6, 16, 16, 1), "float32")
    # No negatives used to give the GAN an empty training set once balanced.
    for balance in (True, False):
        with pytest.raises(DataError, match=missing) as raised:
            train_conditional_gan(images, np.full(6, label), num_epochs=1, balance=balance)
        assert "\n" not in str(raised.value)


@pytest.mark.parametrize(
    "labels, message",
    [
        ([0, 1, 2, 0, 1, 0], r"labels must be 0 or 1, got values \[0, 1, 2\]"),
        ([0, 1, 0.5, 0, 1, 0], r"labels must be 0 or 1, got values \[0.0, 0.5, 1.0\]"),
        ([0, 1, 0, 1], "images and labels differ in length: 6 and 4"),
    ],
    ids=["a third class", "a fraction", "too few"],
)
def test_conditional_gan_refuses_labels_other_than_one_0_or_1_per_slice(labels, message):
    images = np.zeros((6, 16, 16, 1), "float32")
    # A 2 was dropped by the balancing (or fed to a two-class embedding) and 0.5 became 0.
    with pytest.raises(ValueError, match=message) as raised:
        train_conditional_gan(images, np.array(labels), num_epochs=1)
    assert "\n" not in str(raised.value)


def _with_nan(images):
    images = images.copy()
    images[0, 5, 5, 0] = np.nan
    return images


_GOOD_IMAGES = np.random.default_rng(0).uniform(-1, 1, (6, 16, 16, 1)).astype("float32")
_GOOD_LABELS = np.array([0, 1, 0, 1, 0, 1])
# (images, labels, the message's key words): each refused with a one-line ValueError.
_BAD_CLASSIFIER_DATA = {
    # One NaN pixel scored a logit of 2.8e37 (a balanced accuracy of 0.5, no error), or was
    # blamed on training as "classifier logits: ... did training diverge?".
    "nan": (_with_nan(_GOOD_IMAGES), _GOOD_LABELS, r"images: 1 NaN or Inf values"),
    "three_d": (_GOOD_IMAGES[..., 0], _GOOD_LABELS, r"images must be .*\(n, h, w, c\)"),
    "empty": (_GOOD_IMAGES[:0], _GOOD_LABELS[:0], r"images must be a non-empty"),
    "labels_1_2": (_GOOD_IMAGES, _GOOD_LABELS + 1, r"labels must be 0 or 1, got values \[1, 2\]"),
    "labels_0_255": (_GOOD_IMAGES, _GOOD_LABELS * 255, r"labels must be 0 or 1"),
    "length": (_GOOD_IMAGES, _GOOD_LABELS[:4], r"images and labels differ in length: 6 and 4"),
}


@pytest.mark.parametrize("case", list(_BAD_CLASSIFIER_DATA))
def test_classifier_entry_points_refuse_bad_data(case):
    images, labels, message = _BAD_CLASSIFIER_DATA[case]
    model = build_classifier(16, base_filters=4)
    calls = [
        lambda: train_classifier(images, labels, 1, batch_size=4, base_filters=4),
        lambda: evaluate_classifier(model, images, labels),
    ]
    if "labels" not in message:
        calls.append(lambda: classifier_logits(model, images))
    for call in calls:
        with pytest.raises(ValueError, match=message) as raised:
            call()
        assert "\n" not in str(raised.value)


def test_classifier_refuses_images_off_minus_one_one():
    images = (_GOOD_IMAGES + 1) * 127.5  # 8-bit scale
    model = build_classifier(16, base_filters=4)
    for call in (
        lambda: classifier_logits(model, images),
        lambda: evaluate_classifier(model, images, _GOOD_LABELS),
        # The augmenter's brightness, contrast and fill value assume [-1, 1].
        lambda: train_classifier(images, _GOOD_LABELS, 1, batch_size=4, augment=True),
    ):
        with pytest.raises(
            ValueError, match=r"images: values span .*outside value_range \(-1, 1\)"
        ):
            call()
    # Within the 1 % slack of metrics.check_value_range, as interpolation overshoot is.
    assert classifier_logits(model, np.clip(images / 127.5 - 1.0, -1.0, 1.0) * 1.01).shape == (6,)


@pytest.mark.parametrize("split_name", ["train", "test"])
@pytest.mark.parametrize("case", ["nan", "labels_0_255", "length"])
def test_run_experiment_checks_both_splits_before_training(splits, split_name, case, monkeypatch):
    import medgen_tf.augmentation as module

    def no_training(*args, **kwargs):
        raise AssertionError("trained before the data were checked")

    monkeypatch.setattr(module, "train_classifier", no_training)
    monkeypatch.setattr(module, "train_conditional_gan", no_training)
    images, labels, message = _BAD_CLASSIFIER_DATA[case]
    data = dict(splits)
    data[split_name] = {"images": images, "labels": labels}
    message = message.replace("images", f"{split_name}\\['images'\\]")
    message = message.replace("labels", f"{split_name}\\['labels'\\]")
    with pytest.raises(ValueError, match=message) as raised:
        run_experiment(data["train"], data["test"], seeds=(0,), num_epochs=1, batch_size=8)
    assert "\n" not in str(raised.value)


def test_intensity_jitter_keeps_the_air_at_minus_one_and_changes_the_signal():
    # Keras' RandomBrightness and RandomContrast lifted the air (-1, no MR signal) to as much
    # as -0.8, a background that no test image has.
    rng = np.random.default_rng(1)
    images = np.full((16, 16, 16, 1), -1.0, np.float32)
    images[:, 4:12, 4:12] = rng.uniform(-0.6, 0.8, (16, 8, 8, 1))  # a gain of 1.1 stays in range
    for layer in (
        RandomSignalGain(0.1, value_range=(-1.0, 1.0), seed=3),
        RandomGamma(0.1, value_range=(-1.0, 1.0), seed=4),
    ):
        out = np.asarray(layer(images, training=True))
        np.testing.assert_array_equal(out[:, :4], -1.0)
        brain = out[:, 4:12, 4:12] - images[:, 4:12, 4:12]
        assert np.abs(brain).max() > 0.01 and out.max() <= 1.0
        # One draw per image, within the factor: the gain and gamma read back from the output.
        signal, jittered = images[:, 4:12, 4:12] + 1.0, out[:, 4:12, 4:12] + 1.0
        if isinstance(layer, RandomSignalGain):
            per_image = (jittered / signal).reshape(16, -1)
        else:
            per_image = (np.log(jittered / 2) / np.log(signal / 2)).reshape(16, -1)
        np.testing.assert_allclose(per_image, per_image[:, :1] * np.ones_like(per_image), rtol=1e-3)
        assert 0.9 - 1e-3 <= per_image.min() and per_image.max() <= 1.1 + 1e-3
        assert per_image[:, 0].std() > 0.01
        # Both ways: RandomContrast's own draw gave a gamma in [1, 1.1] alone, darkening only.
        assert per_image.min() < 0.97 and per_image.max() > 1.03
        np.testing.assert_array_equal(np.asarray(layer(images, training=False)), images)
        clone = type(layer).from_config(layer.get_config())
        assert clone.value_range == layer.value_range and clone.factor == layer.factor
    augmenter = build_augmenter(seed=0)
    out = np.asarray(augmenter(images, training=True))
    # Flips, rotations (7 degrees) and shifts (1 pixel) move the brain, not into the corners.
    np.testing.assert_array_equal(out[:, :2, :2], -1.0)
    np.testing.assert_array_equal(out[:, -2:, -2:], -1.0)


def test_augmenters_of_neighbouring_seeds_draw_unrelated_streams():
    # Layer i took seed + i: seed 0's rotation shared its seed with seed 1's flip, which then
    # flipped exactly the images that seed 0 turned by a negative angle.
    seeds = {seed: [layer.seed for layer in build_augmenter(seed=seed).layers] for seed in range(4)}
    every = [value for values in seeds.values() for value in values]
    assert len(every) == len(set(every))


def test_rotations_and_shifts_fill_the_corners_with_the_borders_noisy_air():
    # A constant -1 fill painted noise-free bands into noisy air, which no scan has.
    rng = np.random.default_rng(0)
    images = rng.uniform(-1.0, -0.9, (8, 32, 32, 1)).astype(np.float32)  # air with its noise
    out = np.asarray(build_augmenter(seed=0, intensity=0.0)(images, training=True))
    assert np.count_nonzero(out == -1.0) == 0
    assert out.min() >= -1.0 and out.max() <= -0.9 + 1e-6


def test_two_rows_of_one_condition_and_seed_are_refused_by_both_summaries():
    # Pooled runs that reused seeds: summarize counted 4 seeds (mean 0.675) while
    # paired_differences kept the last run's 2 (mean -0.025), without a word.
    rows = [
        {"condition": name, "seed": seed, "balanced_accuracy": 0.5, "auroc": value}
        for name, value in (("real only", 0.6), ("real + cGAN", 0.7))
        for seed in (0, 1, 0)
    ]
    for call in (summarize, format_results, paired_differences):
        with pytest.raises(ValueError, match="two rows for condition 'real only' and seed 0"):
            call(rows)


@pytest.mark.parametrize(
    "arguments, message",
    [
        ({"batch_size": 0}, "batch_size=0: give a whole number >= 1"),
        ({"batch_size": True}, "batch_size=True: give a whole number >= 1"),
        ({"num_epochs": 2.5}, "num_epochs=2.5: give a whole number >= 1"),
        ({"seeds": (0, 0)}, r"run_experiment: seeds \(0, 0\) repeat a seed"),
    ],
    ids=["batch-0", "batch-true", "epochs-fraction", "repeated-seed"],
)
def test_run_experiment_refuses_counts_and_seeds_before_training(
    splits, arguments, message, monkeypatch
):
    # batch_size=0 was a ZeroDivisionError, True trained with batches of 1, and a repeated seed
    # gave two rows that the summaries counted as two replicates.
    import medgen_tf.augmentation as module

    def no_training(*args, **kwargs):
        raise AssertionError("trained before the arguments were checked")

    monkeypatch.setattr(module, "train_classifier", no_training)
    monkeypatch.setattr(module, "train_conditional_gan", no_training)
    options = {"seeds": (0,), "num_epochs": 1, "batch_size": 8, **arguments}
    with pytest.raises(ValueError, match=message):
        run_experiment(splits["train"], splits["test"], **options)


def test_train_classifier_refuses_a_batch_size_or_epochs_that_are_no_count(splits):
    images, labels = splits["train"]["images"][:16], splits["train"]["labels"][:16]
    with pytest.raises(ValueError, match=r"^batch_size=0: give a whole number >= 1$"):
        train_classifier(images, labels, 1, batch_size=0)
    with pytest.raises(ValueError, match=r"^num_epochs=2.5: give a whole number >= 1$"):
        train_classifier(images, labels, 2.5, batch_size=8)


def test_run_experiment_refuses_test_slices_of_another_size_before_training(splits, monkeypatch):
    import medgen_tf.augmentation as module

    def no_training(*args, **kwargs):
        raise AssertionError("trained before the shapes were compared")

    monkeypatch.setattr(module, "train_classifier", no_training)
    test = {
        "images": np.pad(
            splits["test"]["images"], [(0, 0), (4, 4), (4, 4), (0, 0)], constant_values=-1.0
        ),
        "labels": splits["test"]["labels"],
    }
    with pytest.raises(ValueError) as raised:
        run_experiment(splits["train"], test, seeds=(0,), num_epochs=1, batch_size=8)
    size = splits["train"]["images"].shape[1]
    assert str(raised.value) == (
        f"run_experiment: train['images'] are ({size}, {size}, 1) per slice but test['images'] "
        f"({size + 8}, {size + 8}, 1); load both splits at one image_size"
    )
