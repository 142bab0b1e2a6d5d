import re
import subprocess
import sys
import textwrap

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn import metrics as skm
from torch import nn

import prospect as pp
from prospect.errors import InputError, OutputExistsError
from prospect.training import CheckpointError, Trainer, classification_metrics, load_checkpoint


def test_metrics_equal_scikit_learn():
    rng = np.random.default_rng(0)
    for classes in (2, 4):
        y = rng.integers(0, classes, 300)
        logits = rng.normal(size=(300, classes)) + np.eye(classes)[y] * 0.8
        probs = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
        ours = classification_metrics(y, probs)
        pred = probs.argmax(1)
        assert ours["accuracy"] == pytest.approx(skm.accuracy_score(y, pred))
        for name, function in (("precision", skm.precision_score), ("recall", skm.recall_score),
                               ("f1", skm.f1_score)):
            assert ours[f"{name}_macro"] == pytest.approx(function(y, pred, average="macro", zero_division=0))
            np.testing.assert_allclose(ours[name], function(y, pred, average=None, zero_division=0))
        assert ours["confusion"] == skm.confusion_matrix(y, pred).tolist()
        expected_auc = (skm.roc_auc_score(y, probs[:, 1]) if classes == 2
                        else skm.roc_auc_score(y, probs, multi_class="ovr", average="macro"))
        assert ours["roc_auc"] == pytest.approx(expected_auc)
    # a class never predicted: precision 0 as zero_division=0
    ours = classification_metrics([0, 1, 1], [[0.9, 0.1], [0.8, 0.2], [0.7, 0.3]])
    assert ours["precision"] == [pytest.approx(1 / 3), 0.0] and ours["roc_auc"] == pytest.approx(1.0)


class Small(nn.Module):
    """A tiny CNN with dropout (so RNG state matters) and a named backbone."""

    backbone_names = ("features",)

    def __init__(self, channels=3, classes=2):
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(channels, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU())
        self.head = nn.Sequential(nn.Dropout(0.3), nn.Linear(8, classes))
        self.num_classes = classes

    def forward(self, x):
        return self.head(self.features(x).mean(dim=(2, 3)))


def _data(n=96, seed=0):
    rng = np.random.default_rng(seed)
    x = torch.tensor(rng.normal(size=(n, 3, 8, 8)), dtype=torch.float32)
    y = (x[:, 0].mean(dim=(1, 2)) > 0).long()
    x[:, 0] += y[:, None, None] * 1.5 - 0.75
    return torch.utils.data.TensorDataset(x, y)


KWARGS = dict(optimizer="sgd", lr=0.05, momentum=0.9, epochs=5, batch_size=16, step_size=2, gamma=0.5,
              progress=False)


def _fresh(seed=0, cls=Small, **kw):
    torch.manual_seed(seed)
    return cls(**kw)


def _without_time(history):
    return pd.DataFrame(history).drop(columns="seconds")


def test_learns_and_is_reproducible(tmp_path):
    train, val = _data(), _data(48, seed=1)
    first = Trainer(_fresh(), out_dir=tmp_path / "a", **KWARGS).fit(train, val)
    second = Trainer(_fresh(), out_dir=tmp_path / "b", **KWARGS).fit(train, val)
    pd.testing.assert_frame_equal(_without_time(first), _without_time(second))
    assert first["val_accuracy"].iloc[-1] > 0.9
    assert first["lr"].tolist() == [0.05, 0.05, 0.025, 0.025, 0.0125]
    saved = pd.read_csv(tmp_path / "a" / "history.csv")
    np.testing.assert_allclose(saved["train_loss"], first["train_loss"])


def _fit_until_killed(monkeypatch, trainer, train, val, after_epoch):
    """Run ``trainer.fit`` and stop it like a kill right after epoch ``after_epoch`` (0-based) has been saved."""
    original_save = Trainer._save

    def interrupted(self, epoch, improved, checkpoint=True):
        original_save(self, epoch, improved, checkpoint)
        if epoch == after_epoch:
            raise KeyboardInterrupt

    monkeypatch.setattr(Trainer, "_save", interrupted)
    with pytest.raises(KeyboardInterrupt):
        trainer.fit(train, val)
    monkeypatch.setattr(Trainer, "_save", original_save)


def test_resume_equals_uninterrupted(tmp_path, monkeypatch):
    train, val = _data(), _data(48, seed=1)
    whole_model = _fresh()
    whole = Trainer(whole_model, out_dir=tmp_path / "whole", **KWARGS).fit(train, val)

    _fit_until_killed(monkeypatch, Trainer(_fresh(), out_dir=tmp_path / "cut", **KWARGS), train, val, after_epoch=1)
    assert len(pd.read_csv(tmp_path / "cut" / "history.csv")) == 2
    resumed_model = _fresh(seed=99)  # other initial weights: everything must come from the checkpoint
    resumed = Trainer.resume(tmp_path / "cut", resumed_model, **KWARGS).fit(train, val)
    pd.testing.assert_frame_equal(_without_time(resumed), _without_time(whole))
    for (name, a), (_, b) in zip(whole_model.state_dict().items(), resumed_model.state_dict().items(), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0, msg=name)
    with pytest.raises(CheckpointError, match=r"was made with other settings.*'lr': \(0.05, 0.1\)"):
        Trainer.resume(tmp_path / "cut", _fresh(), **{**KWARGS, "lr": 0.1})


def test_sparse_checkpoints_resume_from_the_last_written_one(tmp_path, monkeypatch):
    train = _data()
    settings = {**KWARGS, "epochs": 5, "checkpoint_every": 2}
    whole_model = _fresh()
    whole = Trainer(whole_model, out_dir=tmp_path / "whole", **settings).fit(train)
    assert load_checkpoint(tmp_path / "whole" / "last.pt")["epoch"] == 4  # the last epoch is always written
    assert not (tmp_path / "whole" / "best.pt").exists()  # no validation: best.pt would only copy last.pt
    _fit_until_killed(monkeypatch, Trainer(_fresh(), out_dir=tmp_path / "cut", **settings), train, None,
                      after_epoch=2)
    assert load_checkpoint(tmp_path / "cut" / "last.pt")["epoch"] == 1  # epochs 2 and 4 are written (1-based)
    resumed_model = _fresh(seed=99)
    resumed = Trainer.resume(tmp_path / "cut", resumed_model, **settings).fit(train)
    pd.testing.assert_frame_equal(_without_time(resumed), _without_time(whole))
    for a, b in zip(whole_model.state_dict().values(), resumed_model.state_dict().values(), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_checkpoints_are_plain_and_exported(tmp_path):
    Trainer(_fresh(), out_dir=tmp_path, **{**KWARGS, "epochs": 2}).fit(_data(), _data(32, 1))
    state = torch.load(tmp_path / "last.pt", weights_only=True)
    assert state["epoch"] == 1 and state["config"]["lr"] == 0.05 and len(state["history"]) == 2
    from safetensors.torch import load_file

    weights = load_file(tmp_path / "model.safetensors")
    best = load_checkpoint(tmp_path / "best.pt")["model"]
    assert set(weights) == set(best) and all(torch.equal(weights[k], best[k]) for k in weights)
    assert '"monitor": "val_roc_auc"' in (tmp_path / "config.json").read_text()


def test_without_validation_the_export_holds_the_last_epoch(tmp_path):
    model = _fresh()
    Trainer(model, out_dir=tmp_path, **{**KWARGS, "epochs": 3}).fit(_data())
    from safetensors.torch import load_file

    exported = load_file(tmp_path / "model.safetensors")
    assert all(torch.equal(exported[k], v) for k, v in model.state_dict().items())


def test_corrupt_checkpoint_is_refused_and_nothing_overwritten(tmp_path):
    Trainer(_fresh(), out_dir=tmp_path, **{**KWARGS, "epochs": 1}).fit(_data())
    last = tmp_path / "last.pt"
    last.write_bytes(last.read_bytes()[:500])
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    with pytest.raises(CheckpointError, match=r"last.pt' is corrupt or truncated"):
        Trainer.resume(tmp_path, _fresh(), **{**KWARGS, "epochs": 1})
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before


def test_a_foreign_checkpoint_is_refused_in_one_line(tmp_path):
    Trainer(_fresh(), out_dir=tmp_path, **{**KWARGS, "epochs": 1}).fit(_data())
    other = _fresh()
    other.head[1] = torch.nn.Linear(other.head[1].in_features, 5)     # another model: five classes, one more layer
    other.extra = torch.nn.Linear(2, 2)
    with pytest.raises(CheckpointError) as raised:
        Trainer.resume(tmp_path, other, **{**KWARGS, "epochs": 1})
    message = str(raised.value)
    assert re.search(r"last.pt holds the weights of another model \(2 of the model's tensors missing \(e.g. "
                     r"extra.weight, extra.bias\); 2 of another shape, saved vs model \(e.g. head.1.weight \(2, \d+\) "
                     r"vs \(5, \d+\), head.1.bias \(2,\) vs \(5,\)\)\); train afresh", message), message
    assert len(message) < 500


def test_freeze_backbone_epochs(tmp_path):
    model = _fresh()
    initial = {k: v.clone() for k, v in model.state_dict().items()}
    Trainer(model, **{**KWARGS, "epochs": 1, "freeze_backbone_epochs": 1}).fit(_data())
    assert torch.equal(model.features[0].weight, initial["features.0.weight"])
    assert not torch.equal(model.head[1].weight, initial["head.1.weight"])
    model = _fresh()
    Trainer(model, **{**KWARGS, "epochs": 2, "freeze_backbone_epochs": 1}).fit(_data())
    assert not torch.equal(model.features[0].weight, initial["features.0.weight"])
    with pytest.raises(InputError, match=r"freeze_backbone_epochs needs a model that names its backbone"):
        Trainer(nn.Sequential(nn.Flatten(), nn.Linear(192, 2)), **{**KWARGS, "freeze_backbone_epochs": 1}).fit(_data())


def test_mfaf_uses_its_own_loss_and_trains_on_tiles():
    torch.manual_seed(0)
    model = pp.models.build("mfaf", 3, dilations=(1, 2), backbone="shufflenet_v2")
    trainer = Trainer(model, **{**KWARGS, "epochs": 1}, class_weights=[1.0, 2.0])
    assert isinstance(trainer.loss, pp.models.MFAFLoss) and trainer.loss.aux_weight == 0.4
    probs = trainer.predict(_data(32))
    assert probs.shape == (32, 2) and np.allclose(probs.sum(1), 1, atol=1e-5)
    preset = Trainer.preset("mfaf", model, epochs=1)
    assert preset.config["momentum"] == 0.2 and preset.config["gamma"] == 0.6 and preset.config["step_size"] == 30


def test_bad_input(tmp_path):
    empty = torch.utils.data.TensorDataset(torch.zeros(0, 3, 8, 8), torch.zeros(0, dtype=torch.long))
    with pytest.raises(InputError, match=r"the dataset is empty"):
        Trainer(_fresh(), **KWARGS).fit(empty)
    x = torch.randn(8, 3, 8, 8)
    with pytest.raises(InputError, match=r"labels must lie in \[0, 2\) for a 2-class model; found 0..5"):
        Trainer(_fresh(), **KWARGS).fit(torch.utils.data.TensorDataset(x, torch.tensor([0, 1, 5, 0, 1, 0, 1, 0])))
    wrong = _fresh(classes=3)
    wrong.num_classes = 2
    with pytest.raises(InputError, match=r"the model outputs 3 classes but was built for 2"):
        Trainer(wrong, **KWARGS).fit(_data())
    if not torch.cuda.is_available():
        with pytest.raises(InputError, match=r"device='cuda' but torch sees no CUDA device"):
            Trainer(_fresh(), device="cuda", **KWARGS)
    Trainer(_fresh(), out_dir=tmp_path, **{**KWARGS, "epochs": 1}).fit(_data())
    with pytest.raises(OutputExistsError, match=r"holds another run; pass overwrite=True"):
        Trainer(_fresh(), out_dir=tmp_path, **KWARGS).fit(_data())
    with pytest.raises(InputError, match=r"optimizer='rmsprop'; valid"):
        Trainer(_fresh(), **{**KWARGS, "optimizer": "rmsprop"})


def test_distributed_two_cpu_processes(tmp_path):
    script = tmp_path / "ddp.py"
    script.write_text(textwrap.dedent(f"""
        import sys, torch
        sys.path.insert(0, {str(tmp_path)!r})
        sys.path.insert(0, {str(pp.datasets.sample_path().parents[1])!r})
        from tests.test_training import Small, _data, _fresh, KWARGS
        from prospect.training import Trainer
        torch.set_num_threads(1)
        history = Trainer(_fresh(), out_dir={str(tmp_path / "run")!r}, device="cpu",
                          **{{**KWARGS, "epochs": 2}}).fit(_data(96), _data(50, seed=1))
        print("RANK_DONE", len(history))
    """))
    result = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                             str(script)], capture_output=True, text=True, timeout=240)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.count("RANK_DONE 2") == 2
    history = pd.read_csv(tmp_path / "run" / "history.csv")
    assert history["train_samples"].tolist() == [96, 96]  # both shards of 48
    assert history["val_n"].tolist() == [50, 50]          # every validation sample once, from both ranks
    # the metrics the ranks agree on equal a single-process evaluation of the saved weights
    state = load_checkpoint(tmp_path / "run" / "last.pt")
    model = Small()
    model.load_state_dict(state["model"])
    single = Trainer(model, **KWARGS).evaluate(_data(50, seed=1))
    assert single["accuracy"] == pytest.approx(history["val_accuracy"].iloc[-1])
    assert single["roc_auc"] == pytest.approx(history["val_roc_auc"].iloc[-1])


def test_auc_interval_matches_hanley_mcneil_and_shrinks_over_seeds():
    from prospect.screening import auc_z
    from prospect.training import auc_interval, binary_auc

    rng = np.random.default_rng(1)
    labels = np.r_[np.ones(200), np.zeros(200)]
    scores = np.r_[rng.normal(0.95, 1, 200), rng.normal(0, 1, 200)]
    low, high = auc_interval(labels, scores, seed=3)
    auc = binary_auc(labels == 1, scores)
    s_auc = float(auc_z(auc, 200, 200)[0])  # the closed-form standard error (Hanley & McNeil 1982)
    assert low < auc < high
    assert (high - low) / (2 * 1.96 * s_auc) == pytest.approx(1.0, abs=0.1)
    assert auc_interval(labels, scores, seed=3) == (low, high)
    five_low, five_high = auc_interval([labels] * 5, [scores] * 5, seed=3)  # five independent test sets
    assert (five_high - five_low) / (high - low) == pytest.approx(1 / np.sqrt(5), rel=0.2)
    assert auc_interval([1, 1, 0, 0], [0.9, 0.8, 0.2, 0.1]) == (1.0, 1.0)
    assert np.isnan(auc_interval([1, 1], [0.2, 0.3])[0])
    with pytest.raises(ValueError, match=r"level=1.5 must lie in \(0, 1\)"):
        auc_interval(labels, scores, level=1.5)


def _tiles(n=40, nan_at=None):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(n, 2, 8, 8)).astype(np.float32)
    y = np.arange(n) % 2
    if nan_at is not None:
        x[nan_at] = np.nan
    return pp.tiles.TileSet(x, y, np.zeros(n, np.int64), np.zeros(n, np.int64), np.zeros((n, 4)),
                            np.zeros(n, bool), np.zeros(n, np.int64), ["Cu", "Pb"], "EPSG:32649",
                            (1, 0, 0, 0, -1, 0), 8, 8)


def test_tiles_with_nan_are_refused_naming_tile_and_band(tmp_path):
    with pytest.raises(InputError, match=r"train: 1 of 40 tiles hold NaN or infinite values, the first is tile 7 in "
                                         r"band 'Pb'"):
        Trainer(_fresh(channels=2), out_dir=tmp_path / "run", **KWARGS).fit(_tiles(nan_at=(7, 1, 3, 3)))
    assert not (tmp_path / "run").exists()
    with pytest.raises(InputError, match=r"val: .* tile 0 in band 'Cu'"):
        Trainer(_fresh(channels=2), **KWARGS).fit(_tiles(), _tiles(nan_at=(0, 0)))


class Exploding(Small):
    """Returns NaN logits from its 8th training batch on: a diverging run."""

    calls = 0

    def forward(self, x):
        out = super().forward(x)
        if self.training:
            self.calls += 1
            if self.calls >= 8:
                return out * float("nan")
        return out


def test_non_finite_loss_stops_training_and_exports_nothing(tmp_path):
    # 96 samples / 16 = 6 batches an epoch: the 8th training batch is batch 2 of epoch 2
    with pytest.raises(pp.errors.TrainingError, match=r"the training loss is nan at epoch 2, batch 2 \(lr 0.05\).*"
                                                      r"nothing was exported.*last.pt holds the last finite epoch"):
        Trainer(_fresh(cls=Exploding), out_dir=tmp_path, **KWARGS).fit(_data())
    assert not (tmp_path / "model.safetensors").exists() and not (tmp_path / "config.json").exists()
    state = load_checkpoint(tmp_path / "last.pt")
    weights = [v for v in state["model"].values() if v.is_floating_point()]
    assert state["epoch"] == 0 and all(torch.isfinite(v).all() for v in weights)
    assert len(pd.read_csv(tmp_path / "history.csv")) == 1


class Unlabelled(torch.utils.data.Dataset):
    """A dataset that does not expose its labels: the Trainer sees them only while training."""

    def __init__(self, data):
        self.data = data

    def __len__(self):
        return len(self.data)

    def __getitem__(self, i):
        return self.data[i]


def test_one_class_is_refused_with_the_class_counts(tmp_path):
    x, _ = _data().tensors
    one = torch.utils.data.TensorDataset(x, torch.zeros(len(x), dtype=torch.long))
    with pytest.raises(InputError, match=r"the training data holds one class \(class counts \{0: 96\}\)"):
        Trainer(_fresh(), out_dir=tmp_path / "a", **KWARGS).fit(one)
    assert not (tmp_path / "a").exists()
    tiles = _tiles()
    with pytest.raises(InputError, match=r"class counts \{1: 20\}"):
        Trainer(_fresh(channels=2), **KWARGS).fit(tiles[tiles.y == 1])
    with pytest.raises(InputError, match=r"only class \[0\] in the first epoch"):
        Trainer(_fresh(), out_dir=tmp_path / "b", **KWARGS).fit(Unlabelled(one))
    assert not (tmp_path / "b" / "last.pt").exists()


def test_resume_with_more_epochs_equals_a_longer_run(tmp_path):
    train, val = _data(), _data(48, seed=1)
    longer_model = _fresh()
    longer = Trainer(longer_model, out_dir=tmp_path / "long", **{**KWARGS, "epochs": 7}).fit(train, val)
    Trainer(_fresh(), out_dir=tmp_path / "short", **{**KWARGS, "epochs": 4}).fit(train, val)   # finished
    extended_model = _fresh(seed=5)
    extended = Trainer.resume(tmp_path / "short", extended_model, **{**KWARGS, "epochs": 7}).fit(train, val)
    pd.testing.assert_frame_equal(_without_time(extended), _without_time(longer))
    for a, b in zip(longer_model.state_dict().values(), extended_model.state_dict().values(), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    with pytest.raises(CheckpointError, match=r"epochs=3 but .*last.pt already holds 7 epochs"):
        Trainer.resume(tmp_path / "short", _fresh(), **{**KWARGS, "epochs": 3})
    cosine = {**KWARGS, "scheduler": "cosine", "epochs": 2}
    Trainer(_fresh(), out_dir=tmp_path / "cos", **cosine).fit(train)
    with pytest.warns(UserWarning, match=r"the cosine schedule of 2 epochs now spans 4"):
        resumed = Trainer.resume(tmp_path / "cos", _fresh(), **{**cosine, "epochs": 4})
    assert len(resumed.fit(train)) == 4


def test_an_early_stopped_run_resumed_longer_trains_no_further(tmp_path):
    train, val = _data(), _data(48, seed=1)
    settings = {**KWARGS, "early_stopping": 1, "monitor": "val_loss", "lr": 0.5}
    whole = Trainer(_fresh(), out_dir=tmp_path / "whole", **{**settings, "epochs": 9}).fit(train, val)
    Trainer(_fresh(), out_dir=tmp_path / "part", **{**settings, "epochs": 4}).fit(train, val)
    resumed = Trainer.resume(tmp_path / "part", _fresh(), **{**settings, "epochs": 9}).fit(train, val)
    assert len(whole) < 9   # it did stop early, so the resumed run must stop at the same epoch
    pd.testing.assert_frame_equal(_without_time(resumed), _without_time(whole))


@pytest.mark.parametrize(("key", "value", "message"), [
    ("epochs", 0, r"epochs=0 must be a whole number of at least 1"),
    ("epochs", 2.5, r"epochs=2.5 must be a whole number"),
    ("batch_size", "32", r"batch_size='32' must be a whole number"),
    ("lr", -1, r"lr=-1 must be a positive number"),
    ("gamma", 1.5, r"gamma=1.5 must be a factor in \(0, 1\]"),
    ("scheduler", "linear", r"scheduler='linear'; valid: 'step', 'cosine', None"),
    ("early_stopping", 0, r"early_stopping=0 must be a patience"),
    ("class_weights", ["a", 1], r"class_weights=\['a', 1\] must be one positive number per class"),
    ("device", "tpu", r"device='tpu'; valid: 'auto', 'cpu', 'cuda', 'cuda:N'"),
    ("device", 0, r"device=0; valid"),
])
def test_settings_are_checked_without_a_model(key, value, message):
    with pytest.raises(InputError, match=message):
        pp.training.check_options({key: value})
    with pytest.raises(InputError, match=message):     # the Trainer refuses the same, with the same words
        Trainer(_fresh(), **{**KWARGS, key: value})
    pp.training.check_options({k: v for k, v in KWARGS.items() if k != "progress"})
