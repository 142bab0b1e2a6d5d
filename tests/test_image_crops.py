"""Native-scale crops and their average, the hybrid and the ensemble, contrastive pretraining, weights by name."""

import shutil

import numpy as np
import pytest
import torch
from PIL import Image

import prospect as pp
from prospect.errors import InputError, MissingFileError
from prospect.imagery import ImageFolderSplit, build_classifier
from prospect.training.contrastive import nt_xent


def _textures(tmp_path, per_class=6, sizes=((40, 56), (64, 48), (90, 70))):
    """Two classes told by texture only: stripes and dots, images of several sizes, RGB and grey."""
    rng = np.random.default_rng(0)
    for c, name in enumerate(("dots", "stripes")):
        (tmp_path / name).mkdir(parents=True)
        for i in range(per_class):
            rows, cols = sizes[i % len(sizes)]
            y, x = np.mgrid[0:rows, 0:cols]
            pattern = (np.sin(x / 2.0) > 0) if c else ((y % 6 < 2) & (x % 6 < 2))
            grey = np.clip(0.3 + 0.5 * pattern + rng.normal(0, 0.05, (rows, cols)), 0, 1)
            image = Image.fromarray(np.round(grey * 255).astype(np.uint8), mode="L")
            (image if i % 2 else image.convert("RGB")).save(tmp_path / name / f"{i}.png")
    return tmp_path


def test_crops_keep_the_images_own_pixels_spread_over_it(tmp_path):
    root = _textures(tmp_path)
    split = ImageFolderSplit(root, size=32, crops=4, seed=0, normalize=(0.0, 1.0), split=(0.5, 0.25, 0.25))
    assert len(split.train) == 4 * len(split.train.paths)       # 4 random crops per training image and epoch
    views, label = split.test[0]
    assert views.shape == (4, 3, 32, 32)
    with Image.open(split.test.paths[0]) as image:
        pixels = np.asarray(image.convert("RGB"), np.float32) / 255
    corners = pp.imagery.crop_origins(*pixels.shape[:2], 32, 4)
    assert corners[0] == (0, 0) and corners[-1] == (pixels.shape[0] - 32, pixels.shape[1] - 32)
    for view, (top, left) in zip(views, corners, strict=True):   # the pixels at that place, unresampled
        np.testing.assert_allclose(view.permute(1, 2, 0).numpy(), pixels[top:top + 32, left:left + 32], atol=1e-6)
    assert pp.imagery.crop_origins(50, 70, 32, 1) == [(9, 19)]  # one crop: the centre
    x, _ = split.train[0]
    assert x.shape == (3, 32, 32)
    small = ImageFolderSplit(root, size=64, crops=2, seed=0)   # a 40-px image is enlarged to hold one crop
    assert all(small.test[i][0].shape == (2, 3, 64, 64) for i in range(len(small.test)))
    halved = ImageFolderSplit(root, size=16, crops=1, scale=0.5, seed=0, normalize=(0.0, 1.0))
    with Image.open(halved.test.paths[0]) as image:
        rgb = image.convert("RGB")
        assert halved.test[0][0].shape == (1, 3, 16, 16) and rgb.width >= 32
    for bad, match in (({"crops": 0}, "crops=0 must be a whole number"), ({"scale": 0.5}, "it needs crops"),
                       ({"crops": 2, "scale": -1}, r"scale=-1 must be a number in \(0, 16\]")):
        with pytest.raises(InputError, match=match):
            ImageFolderSplit(root, size=32, **bad)


def test_the_crops_average_is_the_mean_of_the_crops_probabilities(tmp_path):
    root = _textures(tmp_path)
    split = ImageFolderSplit(root, size=32, crops=5, seed=0, split=(0.5, 0.25, 0.25))
    model = build_classifier("resnet18", 2, seed=0)
    trainer = pp.training.Trainer(model, optimizer="adam", lr=1e-3, epochs=2, batch_size=4, device="cpu",
                                  progress=False, precise_bn=2, monitor="val_accuracy")
    trainer.fit(split.train, split.val)
    probabilities = trainer.predict(split.test)
    model.eval()
    with torch.no_grad():
        by_hand = np.stack([torch.softmax(model(split.test[i][0]), 1).mean(0).numpy() for i in range(len(split.test))])
    np.testing.assert_allclose(probabilities, by_hand, rtol=1e-5, atol=1e-6)
    scores = trainer.evaluate(split.test)
    expected = -np.mean(np.log(by_hand[np.arange(len(by_hand)), split.test.labels]))
    assert scores["loss"] == pytest.approx(expected, rel=1e-5)      # the loss of the averaged probabilities
    assert scores["accuracy"] == pytest.approx(np.mean(by_hand.argmax(1) == np.array(split.test.labels)))


def test_the_hybrid_joins_the_baselines_features_and_the_networks(tmp_path):
    root = _textures(tmp_path, per_class=8)
    split = ImageFolderSplit(root, size=32, crops=3, seed=0, split=(0.5, 0.25, 0.25))
    model = build_classifier("resnet18", 2, seed=0).eval()
    features = pp.imagery.ImageFeatures(size=32)
    hybrid = pp.imagery.HybridClassifier(model, features=features, seed=0)
    network, baseline = hybrid.blocks(split.test)
    np.testing.assert_array_equal(baseline, features(split.test.paths))   # the baseline's own features
    with torch.no_grad(), pp.imagery.headless(model) as encoder:
        by_hand = np.stack([encoder(split.test[i][0]).mean(0).numpy() for i in range(len(split.test))])
    np.testing.assert_allclose(network, by_hand, rtol=1e-5, atol=1e-6)    # ResNet18's pooled 512, crop-averaged
    assert network.shape == (len(split.test), 512)
    hybrid.fit(split.evaluated(split.train))
    joined = np.hstack(hybrid.blocks(split.test))
    np.testing.assert_allclose(hybrid.predict_proba(split.test), hybrid.head.predict_proba(joined))
    with pytest.raises(InputError, match="split.evaluated"):
        hybrid.fit(split.train)                 # random crops, 3 per image: not the images once each
    a, b = np.array([[0.2, 0.8], [0.6, 0.4]]), np.array([[0.4, 0.6], [1.0, 0.0]])
    np.testing.assert_allclose(pp.imagery.average_probabilities(a, b), [[0.3, 0.7], [0.8, 0.2]])
    np.testing.assert_allclose(pp.imagery.average_probabilities(a, b, weights=[3, 1]), 0.75 * a + 0.25 * b)
    with pytest.raises(InputError, match="different shapes"):
        pp.imagery.average_probabilities(a, b[:1])


def test_nt_xent_equals_its_definition():
    rng = np.random.default_rng(1)
    first, second = rng.normal(size=(4, 3)), rng.normal(size=(4, 3))
    z = np.vstack([first, second])
    z /= np.linalg.norm(z, axis=1, keepdims=True)
    similarity = z @ z.T / 0.5
    losses = []
    for i in range(8):
        partner = (i + 4) % 8
        others = [j for j in range(8) if j != i]
        losses.append(-similarity[i, partner] + np.log(np.exp(similarity[i, others]).sum()))
    got = nt_xent(torch.tensor(first), torch.tensor(second), temperature=0.5)
    assert float(got) == pytest.approx(np.mean(losses), rel=1e-6)


def test_pretraining_reads_pixels_only_and_its_loss_falls(tmp_path):
    root = _textures(tmp_path / "classes", per_class=8)
    split = ImageFolderSplit(root, size=24, crops=2, seed=0)
    relabelled = tmp_path / "relabelled"                  # the same files under other class names, same order
    copies = []
    for i, path in enumerate(split.paths):
        target = relabelled / ("x" if i % 3 else "y") / f"{i:03d}_{path.name}"
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(path, target)
        copies.append(target)
    states, histories = [], []
    for paths in (split.paths, copies):
        model = build_classifier("resnet18", 2, seed=0)
        histories.append(pp.imagery.pretrain_images(model, paths, size=24, mean=split.mean, std=split.std,
                                                    epochs=6, batch_size=16, lr=1e-3, seed=0))
        states.append(model.state_dict())
    for key in states[0]:
        torch.testing.assert_close(states[0][key], states[1][key])     # labels and folders changed nothing
    loss = histories[0]["loss"].to_numpy()
    assert loss[-2:].mean() < loss[:2].mean()                          # the contrastive task is learnt
    untouched = build_classifier("resnet18", 2, seed=0)
    torch.testing.assert_close(states[0]["fc.weight"], untouched.state_dict()["fc.weight"])   # the head as it was
    assert not torch.equal(states[0]["conv1.weight"], untouched.state_dict()["conv1.weight"])


def test_weights_by_torchvision_name_come_from_the_cache_only(tmp_path, monkeypatch):
    from torchvision import models

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "home"))
    expected = tmp_path / "home" / "hub" / "checkpoints" / "resnet50-11ad3fa6.pth"   # torchvision's V2 file
    assert pp.imagery.weights_file("ResNet50_Weights.IMAGENET1K_V2") == expected
    assert pp.imagery.weights_file("ResNet50_Weights.IMAGENET1K_V2", "resnet50") == expected
    assert pp.imagery.weights_file("torchvision", "resnet50") == expected               # V2 is the DEFAULT
    with pytest.raises(MissingFileError, match=r"needs resnet18-f37072fd\.pth in .*home/hub/checkpoints"):
        build_classifier("resnet18", 3, pretrained="ResNet18_Weights.IMAGENET1K_V1")
    reference = models.resnet18(weights=None)
    folder = tmp_path / "home" / "hub" / "checkpoints"
    folder.mkdir(parents=True)
    torch.save(reference.state_dict(), folder / "resnet18-f37072fd.pth")
    model = build_classifier("resnet18", 3, pretrained="ResNet18_Weights.IMAGENET1K_V1")
    torch.testing.assert_close(model.conv1.weight, reference.conv1.weight)
    assert model.fc.out_features == 3
    with pytest.raises(InputError, match=r"belong to another architecture than 'resnet50'.*ResNet50_Weights\.IMAGENET"):
        build_classifier("resnet50", 3, pretrained="ResNet18_Weights.IMAGENET1K_V1")
    with pytest.raises(InputError, match=r"not torchvision weights; valid: \['ResNet18_Weights\.IMAGENET1K_V1'"):
        pp.imagery.weights_file("ResNet18_Weights.IMAGENET9")
    assert pp.imagery.is_weights_name("Swin_B_Weights.IMAGENET1K_V1")
    assert not pp.imagery.is_weights_name("weights/resnet18.pth")


def test_crops_chosen_from_the_image_sizes(tmp_path):
    def folder(name, size, count):
        for c in ("a", "b"):
            (tmp_path / name / c).mkdir(parents=True)
            for i in range(count // 2):
                Image.new("RGB", size, (40 * i % 255, 90, 20)).save(tmp_path / name / c / f"{i}.png")
        return tmp_path / name

    # shorter side 200: 16·round(200 / 32) = 96 px; ⌈2·300·200 / 96²⌉ = 14 crops, 14 repeats;
    # 1.3e8 / (10·14·96²) = 101 → 30 epochs
    choice = pp.imagery.choose_crops(folder("photos", (300, 200), 10))
    assert (choice.size, choice.crops, choice.repeats, choice.epochs) == (96, 14, 14, 30)
    assert choice.reason.startswith("10 images, median shorter side 200 px: 96-px crops")
    # 60 × 50: 16·round(50 / 32) = 32 px; ⌈2·3000 / 32²⌉ = 6 crops
    assert pp.imagery.choose_crops(folder("small", (60, 50), 10))[:2] == (32, 6)
    # 1000²: 496 px capped at 128; ⌈2·10⁶ / 128²⌉ = 123 crops capped at 16; 4e7 / (40·16·128²) = 3.8 → 10 epochs
    large = folder("large", (1000, 1000), 40)
    assert pp.imagery.choose_crops(large, budget=4e7)[:4] == (128, 16, 16, 10)
    # 1e9 / (40·16·64²) = 381 → 30 epochs
    assert pp.imagery.choose_crops(sorted(large.rglob("*.png")), largest=64, budget=1e9)[::3] == (64, 30)
