import numpy as np
import pytest
import torch
import torch.nn.functional as F

import prospect as pp
from prospect.errors import InputError, MissingFileError
from prospect.models import MFAF, MFAFLoss, MFAFOutput, build, probabilities


@pytest.mark.parametrize("backbone", ["resnet18", "shufflenet_v2"])
def test_mfaf_shapes_on_paper_tiles(backbone):
    torch.manual_seed(0)
    model = build("mfaf", in_channels=10, backbone=backbone).eval()
    with torch.no_grad():
        out = model(torch.randn(2, 10, 128, 128))
    assert isinstance(out, MFAFOutput)
    assert out.logits.shape == (2, 2) and out.branch_logits.shape == (2, 5, 2)
    expected = torch.log(torch.softmax(out.branch_logits, dim=-1).mean(dim=1))
    torch.testing.assert_close(out.logits, expected)
    torch.testing.assert_close(probabilities(out).sum(dim=1), torch.ones(2))


def test_gradients_reach_every_parameter():
    torch.manual_seed(1)
    model = MFAF(in_channels=4, dilations=(1, 3), backbone="shufflenet_v2")
    loss = model.default_loss()(model(torch.randn(3, 4, 64, 64)), torch.tensor([0, 1, 1]))
    loss.backward()
    names = [n for n, p in model.named_parameters() if p.grad is None or p.grad.abs().sum() == 0]
    assert names == []
    assert any("channel_attention" in n for n, _ in model.named_parameters())
    assert any("spatial_attention" in n for n, _ in model.named_parameters())


def test_ablation_switches_remove_their_parameters():
    def count(**kwargs):
        return sum(p.numel() for p in MFAF(10, **kwargs).parameters())

    full = count()
    # CBAM channel MLP on 10 channels (hidden max(10 // 4, 4) = 4): 10*4 + 4 + 4*10 + 10 = 94 per branch;
    # spatial attention 7x7x2 = 98 per branch
    assert full - count(channel_attention=False) == 5 * 94
    assert full - count(spatial_attention=False) == 5 * 98
    no_ca = MFAF(10, channel_attention=False)
    assert not any("channel_attention" in n for n, _ in no_ca.named_parameters())
    assert len(MFAF(10, dilations="rate1").branches) == 5 and MFAF(10, dilations=[1, 2]).dilations == (1, 2)
    assert MFAF(10, dilations="rate4").branches[4].dilated[0].dilation == (32, 32)


def test_vote_is_the_majority_of_branch_argmaxes():
    rng = np.random.default_rng(0)
    branch = torch.tensor(rng.normal(size=(200, 5, 3)), dtype=torch.float32)
    fused = torch.log(torch.softmax(branch, -1).mean(1))
    votes = MFAFOutput(fused, branch).vote().numpy()
    argmax = branch.argmax(-1).numpy()
    for row, choice in zip(argmax, votes, strict=True):
        counts = np.bincount(row, minlength=3)
        assert counts[choice] == counts.max()
    # a tie (2 branches, 2 classes) goes to the class with the higher fused probability
    tie = torch.tensor([[[3.0, 0.0], [0.0, 1.0]]])
    assert MFAFOutput(torch.log(torch.softmax(tie, -1).mean(1)), tie).vote().item() == 0


def test_loss_matches_its_definition():
    torch.manual_seed(2)
    branch = torch.randn(6, 5, 2)
    out = MFAFOutput(torch.log(torch.softmax(branch, -1).mean(1)), branch)
    y = torch.tensor([0, 1, 1, 0, 1, 0])
    fused = F.nll_loss(out.logits, y)
    aux = torch.stack([F.cross_entropy(branch[:, k], y) for k in range(5)]).mean()
    torch.testing.assert_close(MFAFLoss(0.4)(out, y), fused + 0.4 * aux)
    torch.testing.assert_close(MFAFLoss(0.0)(out, y), fused)
    one = MFAFOutput(F.log_softmax(branch[:, :1].squeeze(1), -1), branch[:, :1])
    torch.testing.assert_close(MFAFLoss(0.0, label_smoothing=0.1)(one, y),
                               F.cross_entropy(branch[:, 0], y, label_smoothing=0.1))


def test_deterministic_under_a_seed():
    x = torch.randn(2, 3, 64, 64)
    outputs = []
    for _ in range(2):
        torch.manual_seed(7)
        model = MFAF(3, dilations=(1, 6), backbone="shufflenet_v2").eval()
        with torch.no_grad():
            outputs.append(model(x).logits)
    torch.testing.assert_close(outputs[0], outputs[1], rtol=0, atol=0)


@pytest.mark.parametrize("name", ["resnet18", "shufflenet_v2", "googlenet", "mobilenet_v2", "mnasnet"])
def test_baselines_take_c_channels(name):
    model = build(name, in_channels=10)
    model.train()
    out = model(torch.randn(2, 10, 64, 64))
    assert isinstance(out, torch.Tensor) and out.shape == (2, 2)  # googlenet: no aux heads, even in training
    torch.testing.assert_close(probabilities(out), torch.softmax(out, -1))
    from prospect.models.backbones import HEAD

    assert model.backbone_names and HEAD[name] not in model.backbone_names


def test_registry_errors():
    with pytest.raises(InputError, match=r"unknown model 'vgg'; valid: \['googlenet', 'mfaf', 'mnasnet'"):
        build("vgg", 10)
    assert "mfaf" in pp.models.list_models()
    with pytest.raises(InputError, match=r"resnet18 takes no options \['dilations'\]"):
        build("resnet18", 10, dilations=(1, 2))
    with pytest.raises(InputError, match=r"MFAF expects \(batch, 10, height, width\) input, got \(1, 3, 32, 32\)"):
        build("mfaf", 10)(torch.randn(1, 3, 32, 32))
    with pytest.raises(InputError, match=r"dilations='rate9'; valid names"):
        MFAF(10, dilations="rate9")
    with pytest.raises(InputError, match=r"expected logits"):
        probabilities(torch.zeros(3))


def test_local_pretrained_weights_are_inflated(tmp_path):
    from torchvision import models

    torch.manual_seed(3)
    imagenet = models.resnet18(weights=None).state_dict()
    path = tmp_path / "resnet18-imagenet.pth"
    torch.save(imagenet, path)
    model = build("resnet18", in_channels=10, pretrained=path)
    rgb = imagenet["conv1.weight"]
    torch.testing.assert_close(model.conv1.weight, rgb.mean(1, keepdim=True).repeat(1, 10, 1, 1) * 0.3)
    torch.testing.assert_close(model.layer3[0].conv1.weight, imagenet["layer3.0.conv1.weight"])
    assert model.fc.out_features == 2
    mfaf = MFAF(10, dilations=(1, 2), pretrained=path)
    torch.testing.assert_close(mfaf.branches[1].backbone.layer4[1].conv2.weight, imagenet["layer4.1.conv2.weight"])
    torch.save(models.mobilenet_v2(weights=None).state_dict(), tmp_path / "mobilenet.pth")
    with pytest.raises(InputError, match=r"mobilenet.pth holds 'features.0.0.weight', which a resnet18 does not have"):
        build("resnet18", 10, pretrained=tmp_path / "mobilenet.pth")
    with pytest.raises(MissingFileError, match=r"pretrained='.*nowhere.pth' does not exist.*never downloads"):
        build("resnet18", 10, pretrained=tmp_path / "nowhere.pth")
    (tmp_path / "junk.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(InputError, match=r"could not be read as a weights file"):
        build("resnet18", 10, pretrained=tmp_path / "junk.pth")


def test_a_shared_trunk_is_one_resnet18_for_all_branches():
    own = build("mfaf", 10, backbone="resnet18")
    shared = build("mfaf", 10, backbone="resnet18", shared_backbone=True)
    trunk = sum(p.numel() for p in shared.branches[0].backbone.parameters())
    count = lambda model: sum(p.numel() for p in model.parameters())  # noqa: E731
    # four trunks fewer; everything else (dilated convolutions, attention, head) the same
    assert count(own) - count(shared) == 4 * trunk and len(shared.backbone) == 1 and len(own.backbone) == 5
    assert all(branch.backbone is shared.branches[0].backbone for branch in shared.branches)
    out = shared(torch.randn(2, 10, 32, 32))
    assert out.branch_logits.shape == (2, 5, 2)


def test_dilations_keep_their_ground_reach_on_a_coarser_grid():
    assert pp.models.mfaf.scale_dilations((1, 6, 12, 18, 24), 4) == (1, 2, 3, 5, 6)
    assert pp.models.mfaf.scale_dilations((1, 6, 12, 18, 24), 1) == (1, 6, 12, 18, 24)
    model = build("mfaf", 10, dilation_scale=4)
    assert model.dilations == (1, 2, 3, 5, 6)
    assert [b.dilated[0].dilation for b in model.branches] == [(1, 1), (2, 2), (3, 3), (5, 5), (6, 6)]
    with pytest.raises(InputError, match=r"dilation_scale=0.0 must be a positive number"):
        build("mfaf", 10, dilation_scale=0)


def test_a_trunk_smaller_than_3x3_warns_once():
    model = build("mfaf", 4, backbone="resnet18", dilations=[1, 2])
    with pytest.warns(UserWarning, match=r"the resnet18 trunk ends at 1 x 1 on 32 x 32 inputs; below 3 x 3"):
        model(torch.randn(2, 4, 32, 32))
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        model(torch.randn(2, 4, 32, 32))                      # once only
        build("mfaf", 4, backbone="resnet18", dilations=[1])(torch.randn(2, 4, 96, 96))   # 3 x 3: no warning
