import warnings

import numpy as np
import pytest
import torch
from PIL import Image

import prospect as pp
from prospect.errors import InputError, MissingFileError
from prospect.imagery import ImageFolderSplit, build_classifier, classification_report, grad_cam
from tests.conftest import ORE_IMAGES


def _folder(tmp_path, modes=("RGB", "L", "RGBA", "P"), per_class=6, classes=("a", "b")):
    rng = np.random.default_rng(0)
    for c, name in enumerate(classes):
        (tmp_path / name).mkdir(parents=True)
        for i in range(per_class):
            pixels = np.full((20 + i, 30, 3), 60 + 120 * c, np.uint8) + rng.integers(0, 20, (20 + i, 30, 3),
                                                                                     dtype=np.uint8)
            Image.fromarray(pixels).convert(modes[i % len(modes)]).save(tmp_path / name / f"img{i}_r0_c0.png")
    return tmp_path


def test_mixed_modes_and_sizes_load_as_rgb(tmp_path):
    split = ImageFolderSplit(_folder(tmp_path), size=32, split=(0.5, 0.25, 0.25), augment=None)
    assert split.classes == ["a", "b"]
    assert len(split.train) + len(split.val) + len(split.test) == 12
    for dataset in (split.train, split.val, split.test):
        x, y = dataset[0]
        assert tuple(x.shape) == (3, 32, 32) and x.dtype == torch.float32 and y in (0, 1)
    # stratified: each side holds both classes
    assert sorted(set(split.train.labels)) == [0, 1] and sorted(set(split.test.labels)) == [0, 1]


def test_group_by_keeps_crops_of_one_image_together(tmp_path):
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        for source in range(5):
            for crop in range(4):
                Image.new("RGB", (16, 16), (source * 40, 0, 0)).save(tmp_path / name / f"s{source}_r{crop}_c0.png")
    split = ImageFolderSplit(tmp_path, size=16, group_by=r"^(.*)_r\d+_c\d+$", augment=None)
    sides = [{(p.parent.name, p.stem.split("_")[0]) for p in d.paths} for d in (split.train, split.val, split.test)]
    assert not (sides[0] & sides[1]) and not (sides[0] & sides[2]) and not (sides[1] & sides[2])
    assert all(len(d) % 4 == 0 for d in (split.train, split.val, split.test))


def test_bad_folders(tmp_path):
    with pytest.raises(MissingFileError, match=r"root='.*nowhere' is not a folder of class folders"):
        ImageFolderSplit(tmp_path / "nowhere")
    (tmp_path / "only").mkdir()
    Image.new("RGB", (8, 8)).save(tmp_path / "only" / "x.png")
    with pytest.raises(InputError, match=r"has 1 class folder\(s\) \['only'\]; a classifier needs at least 2"):
        ImageFolderSplit(tmp_path)
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match=r"class folder '.*empty' holds no readable image"):
        ImageFolderSplit(tmp_path)


def test_corrupt_files_are_skipped_with_a_warning(tmp_path):
    folder = _folder(tmp_path)
    (folder / "a" / "broken.png").write_bytes(b"\x89PNG not really")
    with pytest.warns(UserWarning, match=r"skipped 1 unreadable files: \[.*broken.png"):
        split = ImageFolderSplit(folder, size=16, augment=None)
    assert len(split.skipped) == 1


def test_zoo_names_and_attention(tmp_path):
    assert set(pp.imagery.list_classifiers()) >= {"resnet50", "mobilenet_v2", "convnext_tiny", "swin_b", "swin_t",
                                                  "vgg19", "vgg16", "googlenet", "resnext50_32x4d", "alexnet",
                                                  "inception_v3"}
    count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    plain, se = build_classifier("mobilenet_v2", 5), build_classifier("mobilenet_v2", 5, attention="se")
    assert count(se) - count(plain) == 1280 * 80 + 80 + 80 * 1280 + 1280  # SE on 1280 channels, reduction 16
    eca = build_classifier("convnext_tiny", 5, attention="eca")
    assert count(eca) - count(build_classifier("convnext_tiny", 5)) == 3 + 5 + 5 + 5  # ECA kernels for 96..768 channels
    with pytest.raises(InputError, match=r"unknown classifier 'lenet'; valid"):
        build_classifier("lenet", 5)
    with pytest.raises(InputError, match=r"attention='se' is placed after MobileNetV2"):
        build_classifier("resnet50", 5, attention="se")


@pytest.mark.parametrize("name", ["resnet50", "mobilenet_v2", "convnext_tiny", "swin_t", "googlenet",
                                  "resnext50_32x4d", "alexnet", "inception_v3"])
def test_zoo_forward_at_native_size(name):
    model = build_classifier(name, 5).eval()
    size = pp.imagery.INPUT_SIZE[name]
    with torch.no_grad():
        assert model(torch.randn(1, 3, size, size)).shape == (1, 5)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["swin_b", "vgg16", "vgg19"])
def test_large_zoo_forward_at_native_size(name):
    model = build_classifier(name, 5).eval()
    with torch.no_grad():
        assert model(torch.randn(1, 3, 224, 224)).shape == (1, 5)


def test_weights_files(tmp_path, monkeypatch):
    from torchvision import models

    torch.save(models.mobilenet_v2(weights=None).state_dict(), tmp_path / "imagenet.pth")
    model = build_classifier("mobilenet_v2", 5, pretrained=tmp_path / "imagenet.pth")
    assert model.classifier[-1].out_features == 5
    with pytest.raises(InputError, match=r"imagenet.pth holds .* which a resnet50 does not have"):
        build_classifier("resnet50", 5, pretrained=tmp_path / "imagenet.pth")
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "cache"))
    with pytest.raises(MissingFileError, match=r"needs mobilenet_v2-.*\.pth in .*cache/hub/checkpoints"):
        build_classifier("mobilenet_v2", 5, pretrained="torchvision")
    from safetensors.torch import save_file

    save_file(build_classifier("resnet18", 4).state_dict(), str(tmp_path / "four.safetensors"))
    with pytest.raises(InputError, match=r"'fc.weight', \(4, 512\), \(5, 512\).*another number of classes"):
        pp.imagery.load_weights(build_classifier("resnet18", 5), tmp_path / "four.safetensors")


def test_freezing_stops_backbone_gradients_and_cam_still_works():
    torch.manual_seed(0)  # unseeded, 1 draw in 3 left an image without positive evidence (an all-zero CAM)
    model = build_classifier("resnet18", 3, seed=None)
    for name in model.backbone_names:
        for parameter in getattr(model, name).parameters():
            parameter.requires_grad_(False)
    x = torch.randn(2, 3, 64, 64)
    model(x).sum().backward()
    assert all(p.grad is None for n in model.backbone_names for p in getattr(model, n).parameters())
    assert model.fc.weight.grad is not None
    cams = grad_cam(model, x, target=1)
    assert cams.shape == (2, 64, 64) and cams.min() >= 0 and cams.max() <= 1 and np.allclose(cams.max((1, 2)), 1)


def test_cam_without_positive_evidence_is_zero_not_nan():
    torch.manual_seed(1)  # an untrained ResNet18 whose class-1 evidence is negative everywhere on these images
    model = build_classifier("resnet18", 3, seed=None)
    cams = grad_cam(model, torch.randn(2, 3, 64, 64), target=1)
    assert np.isfinite(cams).all() and set(np.round(cams.max((1, 2)), 6)) <= {0.0, 1.0} and cams.max() == 0


def test_swin_grad_cam_shape():
    model = build_classifier("swin_t", 5)
    cams = grad_cam(model, torch.randn(1, 3, 224, 224))
    assert cams.shape == (1, 224, 224) and 0 <= cams.min() and cams.max() <= 1


def test_report_matches_sklearn():
    from sklearn.metrics import classification_report as sk_report

    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 90)
    prob = rng.dirichlet(np.ones(3), 90) + np.eye(3)[y] * 0.3
    table = classification_report(y, prob, ["gold", "pyrite", "stibnite"])
    reference = sk_report(y, prob.argmax(1), output_dict=True, zero_division=0)
    assert table.loc["pyrite", "f1"] == pytest.approx(reference["1"]["f1-score"])
    assert table.loc["macro avg", "recall"] == pytest.approx(reference["macro avg"]["recall"])
    assert table.loc["weighted avg", "precision"] == pytest.approx(reference["weighted avg"]["precision"])
    assert table.loc["accuracy", "f1"] == pytest.approx(reference["accuracy"])
    assert table.loc["gold", "support"] == (y == 0).sum()
    fig = pp.imagery.plot_confusion(y, prob, ["gold", "pyrite", "stibnite"])
    assert len(fig.axes) == 2


def test_crop_patches_and_offline_augmentation(tmp_path):
    (tmp_path / "raw" / "gold").mkdir(parents=True)
    Image.new("RGB", (600, 520), (200, 160, 40)).save(tmp_path / "raw" / "gold" / "slide1.png")
    crops = pp.imagery.crop_patches(tmp_path / "raw", size=256, stride=256, out=tmp_path / "crops")
    assert sorted(p.name for p in crops) == ["slide1_r0_c0.png", "slide1_r0_c256.png", "slide1_r256_c0.png",
                                             "slide1_r256_c256.png"]
    assert all(p.parent.name == "gold" for p in crops) and Image.open(crops[0]).size == (256, 256)
    made = pp.imagery.augment_offline(tmp_path / "crops", tmp_path / "augmented", copies=2, seed=1)
    assert len(made) == 4 * 6 * 2
    again = pp.imagery.augment_offline(tmp_path / "crops", tmp_path / "again", copies=2, seed=1)
    assert all(np.array_equal(np.asarray(Image.open(a)), np.asarray(Image.open(b)))
               for a, b in zip(made, again, strict=True))
    with pytest.raises(FileExistsError):
        pp.imagery.augment_offline(tmp_path / "crops", tmp_path / "augmented", copies=2, seed=1)


def test_short_training_on_sample_micrographs_beats_chance():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        split = ImageFolderSplit(ORE_IMAGES, size=32, seed=0, normalize="dataset", augment=("flip",))
    torch.manual_seed(0)
    model = build_classifier("resnet18", len(split.classes))
    trainer = pp.training.Trainer(model, optimizer="adam", lr=1e-3, scheduler=None, epochs=12, batch_size=16,
                                  progress=False, monitor="val_accuracy")
    trainer.fit(split.train, split.val)
    probs = trainer.predict(split.test)
    accuracy = (probs.argmax(1) == np.array(split.test.labels)).mean()
    assert accuracy > 0.6  # chance is 0.2 for five classes; 0.800 at 32 px (0.825 at 64, twice the time)
