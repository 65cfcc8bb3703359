"""ConvNeXt block and classifier (course_lib.transformer.convnext)."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from course_lib.transformer import ConvNeXt, ConvNeXtBlock, count_parameters


def test_block_keeps_the_shape_and_is_the_identity_without_layer_scale(device):
    torch.manual_seed(0)
    block = ConvNeXtBlock(8, kernel_size=3, layer_scale=0.0).to(device)
    x = torch.randn(2, 8, 5, 6, device=device)
    assert torch.equal(block(x), x)  # gamma = 0: only the residual path
    block.gamma.data.fill_(1.0)
    assert block(x).shape == x.shape
    assert not torch.allclose(block(x), x)


def test_block_matches_its_formula_by_hand(device):
    torch.manual_seed(1)
    block = ConvNeXtBlock(4, kernel_size=3, expansion=2, layer_scale=0.5).to(device).double()
    x = torch.randn(3, 4, 4, 4, device=device, dtype=torch.float64)
    h = F.conv2d(x, block.depthwise.weight, block.depthwise.bias, padding=1, groups=4)
    h = F.layer_norm(h.permute(0, 2, 3, 1), (4,), block.norm.weight, block.norm.bias, 1e-6)
    h = F.gelu(h @ block.linear1.weight.T + block.linear1.bias) @ block.linear2.weight.T
    expected = x + 0.5 * (h + block.linear2.bias).permute(0, 3, 1, 2)
    torch.testing.assert_close(block(x), expected)


def test_depthwise_convolution_mixes_no_channels():
    block = ConvNeXtBlock(6, kernel_size=7)
    assert block.depthwise.weight.shape == (6, 1, 7, 7)  # one 7x7 filter per channel
    assert block.linear1.out_features == 4 * 6  # inverted bottleneck


def test_parameter_count_by_formula():
    d, k, e = 16, 7, 4
    block = ConvNeXtBlock(d, k, e)
    expected = (d * k * k + d) + 2 * d + (d * e * d + e * d) + (e * d * d + d) + d
    assert count_parameters(block) == expected


def test_classifier_trains_and_matches_the_vit_interface(device):
    torch.manual_seed(0)
    model = ConvNeXt(in_channels=1, num_classes=3, patch_size=2, dim=16, depth=2).to(device)
    images = torch.randn(12, 1, 8, 8, device=device)
    labels = (images.mean(dim=(1, 2, 3)) > 0).long() + (images[:, 0, 0, 0] > 1).long()
    logits, loss = model(images, labels.cpu().to(device))
    assert logits.shape == (12, 3) and loss.dim() == 0
    assert model(images)[1] is None
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    first = loss.item()
    for _ in range(30):
        optimizer.zero_grad()
        loss = model(images, labels)[1]
        loss.backward()
        optimizer.step()
    assert loss.item() < first


def test_patchify_stem_is_the_vit_patch_embedding():
    model = ConvNeXt(patch_size=2, dim=8, depth=0)
    assert isinstance(model.stem, nn.Conv2d)
    assert model.stem.kernel_size == model.stem.stride == (2, 2)


def test_bad_input_names_the_argument():
    model = ConvNeXt(in_channels=1, patch_size=2, dim=8, depth=1)
    with pytest.raises(ValueError, match="images"):
        model(torch.randn(2, 3, 8, 8))
    with pytest.raises(ValueError, match="patch_size"):
        model(torch.randn(2, 1, 7, 8))
    with pytest.raises(TypeError, match="images"):
        model(torch.zeros(2, 1, 8, 8, dtype=torch.long))
    with pytest.raises(ValueError, match="kernel_size"):
        ConvNeXtBlock(8, kernel_size=4)
    with pytest.raises(ValueError, match="dim"):
        ConvNeXtBlock(0)
