"""The lean conv backbone (generators/base/backbone.py): exact sizes, widths, cost, precision flags."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from benchbox_plugins.generators.base import backbone as bb


def test_stage_widths_shrink_as_the_map_grows():
    assert bb.stage_widths(3, 32) == [32, 64, 128]  # 28 px: 14, 7, 4 px maps
    assert bb.stage_widths(6, 32) == [8, 8, 16, 32, 64, 128]  # 256 px: 128 ... 4 px, floor 8
    assert bb.stage_widths(2, 8) == [16, 32]
    assert bb.stage_widths(6, 8) == [4, 4, 4, 8, 16, 32]  # floor never below 4


@pytest.mark.parametrize("up", bb.UP_MODES)
@pytest.mark.parametrize("size,channels", [(8, 1), (12, 3), (28, 1), (31, 3), (100, 1), (256, 3)])
def test_round_trip_gives_the_exact_size_in_unit_range(size, channels, up):
    torch.manual_seed(0)
    enc = bb.Encoder(channels, size, 5, width=8)
    dec = bb.Decoder(channels, size, 5, width=8, up=up)
    x = torch.rand(2, channels, size, size)
    with torch.no_grad():
        z = enc(x)
    assert z.shape == (2, 5)
    with torch.no_grad():
        y = dec(z)
    assert y.shape == x.shape and y.dtype == torch.float32
    assert float(y.min()) >= 0.0 and float(y.max()) <= 1.0


def _conv_macs(net: nn.Module, x: torch.Tensor) -> int:
    macs = []

    def hook(m, inp, out):
        k = m.weight.shape  # Conv2d: out, in, kh, kw; ConvTranspose2d: in, out, kh, kw
        per_out = k[1] * k[2] * k[3] if isinstance(m, nn.Conv2d) else k[0] * k[2] * k[3] // 4
        macs.append(out.numel() * per_out)

    handles = [m.register_forward_hook(hook) for m in net.modules() if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))]
    with torch.no_grad():
        net(x)
    for h in handles:
        h.remove()
    return sum(macs)


def test_cost_grows_about_linearly_with_pixels_and_no_conv_runs_on_the_full_map():
    costs = {}
    for size in (64, 128, 256):
        ae = bb.AutoEncoder(3, size, 16, up="shuffle")  # the costlier up mode, whose convs the hooks see
        costs[size] = _conv_macs(ae, torch.rand(1, 3, size, size))
        full = []
        for m in ae.decoder.modules():
            if isinstance(m, nn.Conv2d):
                m.register_forward_hook(lambda m, i, o: full.append(i[0].shape[-1]))
        ae.decoder(torch.zeros(1, 16))
        assert max(full) < size  # decoder convs run on half-size maps at most (the shuffle writes the full map)
    assert costs[256] / costs[128] < 4.5 and costs[128] / costs[64] < 4.5
    assert costs[256] < 120e6  # the pre-issue-16 backbone: ~1.9 GMAC per 256 px image


def test_bf16_flag_is_a_no_op_on_cpu_and_channels_last_gives_the_same_numbers():
    torch.manual_seed(0)
    ref = bb.AutoEncoder(3, 28, 8)
    x = torch.rand(4, 3, 28, 28)
    for kw in ({"bf16": True}, {"channels_last": True}):
        torch.manual_seed(0)
        other = bb.AutoEncoder(3, 28, 8, **kw)
        ref.eval(), other.eval()
        with torch.no_grad():
            a, b = ref(x), other(x)
        if "bf16" in kw:
            assert torch.equal(a, b)
        else:
            assert torch.allclose(a, b, atol=1e-5) and b.is_contiguous()


def test_unknown_up_mode_is_one_clear_error():
    with pytest.raises(ValueError, match="unknown up mode 'bilinear'; expected one of transpose, shuffle"):
        bb.Decoder(1, 28, 4, up="bilinear")
