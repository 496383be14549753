"""PyTorch twin of DALL-E's dVAE encoder (the tokenizer of the BEiT paper), written from

    openai/DALL-E  dall_e/encoder.py  commit 07eeab311f0fd961dc384c318f082e5539b29625
    openai/DALL-E  dall_e/utils.py    commit 16f02ec6ab6e071fa8d23e231c94caf10f6667c6

with the same class names, constructor arguments, attribute names and parameter names, so a
state dict of the original maps 1:1 (and tools/import_dalle.py can unpickle the released
encoder.pkl onto these classes). Differences from the source: plain nn.Module instead of
attrs classes (no `attr` dependency), CPU float32 only (no float16 path), and no
requires_grad/device plumbing beyond the constructor arguments.

    Conv2d(n_in, n_out, kw): parameters w [n_out, n_in, kw, kw] (normal, std 1/sqrt(n_in kw^2))
        and b [n_out] (zeros); F.conv2d with padding (kw - 1) // 2.
    EncoderBlock(n_in, n_out, n_layers): n_hid = n_out // 4, post_gain = 1 / n_layers^2
        id_path  = Conv2d(n_in, n_out, 1) if n_in != n_out else Identity
        res_path = relu_1, conv_1 (n_in -> n_hid, 3), relu_2, conv_2 (n_hid -> n_hid, 3),
                   relu_3, conv_3 (n_hid -> n_hid, 3), relu_4, conv_4 (n_hid -> n_out, 1)
        forward  = id_path(x) + post_gain * res_path(x)
    Encoder(n_hid=256, n_blk_per_group=2, input_channels=3, vocab_size=8192), group_count = 4,
        n_layers = group_count * n_blk_per_group:
        blocks.input    Conv2d(input_channels, n_hid, 7)
        blocks.group_g  (g = 1..4) block_1..block_{n_blk_per_group} at width 2^(g-1) n_hid
                        (block_1 takes the previous group's width), then (g < 4) pool =
                        MaxPool2d(kernel_size=2)
        blocks.output   relu, conv = Conv2d(8 n_hid, vocab_size, 1)        -> logits [B, V, h, w]
    map_pixels(x) = (1 - 2 eps) x + eps with eps = 0.1 (logit-Laplace), applied by the CALLER
    to x in [0, 1] before the encoder (as BEiT's DataAugmentationForBEiT does); tokens =
    argmax over V of the logits.
"""
from collections import OrderedDict

import torch
import torch.nn as nn
import torch.nn.functional as F

logit_laplace_eps = 0.1


class Conv2d(nn.Module):
    def __init__(self, n_in, n_out, kw, use_float16=True, device=torch.device("cpu"), requires_grad=False):
        super().__init__()
        assert n_in >= 1 and n_out >= 1 and kw >= 1 and kw % 2 == 1
        self.n_in, self.n_out, self.kw = n_in, n_out, kw
        self.use_float16, self.device, self.requires_grad = use_float16, device, requires_grad
        w = torch.empty((n_out, n_in, kw, kw), dtype=torch.float32, device=device, requires_grad=requires_grad)
        w.normal_(std=1 / ((n_in * kw ** 2) ** (1 / 2)))
        b = torch.zeros((n_out,), dtype=torch.float32, device=device, requires_grad=requires_grad)
        self.w, self.b = nn.Parameter(w), nn.Parameter(b)

    def forward(self, x):
        if x.dtype != torch.float32:
            x = x.float()
        return F.conv2d(x, self.w, self.b, padding=(self.kw - 1) // 2)


class EncoderBlock(nn.Module):
    def __init__(self, n_in, n_out, n_layers, device=None, requires_grad=False):
        super().__init__()
        assert n_in >= 1 and n_out >= 1 and n_out % 4 == 0 and n_layers >= 1
        self.n_in, self.n_out, self.n_layers = n_in, n_out, n_layers
        self.device, self.requires_grad = device, requires_grad
        self.n_hid = self.n_out // 4
        self.post_gain = 1 / (self.n_layers ** 2)

        def make_conv(a, b, k):
            return Conv2d(a, b, k, device=device if device is not None else torch.device("cpu"),
                          requires_grad=requires_grad)

        self.id_path = make_conv(self.n_in, self.n_out, 1) if self.n_in != self.n_out else nn.Identity()
        self.res_path = nn.Sequential(OrderedDict([
            ("relu_1", nn.ReLU()),
            ("conv_1", make_conv(self.n_in, self.n_hid, 3)),
            ("relu_2", nn.ReLU()),
            ("conv_2", make_conv(self.n_hid, self.n_hid, 3)),
            ("relu_3", nn.ReLU()),
            ("conv_3", make_conv(self.n_hid, self.n_hid, 3)),
            ("relu_4", nn.ReLU()),
            ("conv_4", make_conv(self.n_hid, self.n_out, 1)),
        ]))

    def forward(self, x):
        return self.id_path(x) + self.post_gain * self.res_path(x)


class Encoder(nn.Module):
    group_count = 4  # a class attribute in the source too (not a constructor argument)

    def __init__(self, n_hid=256, n_blk_per_group=2, input_channels=3, vocab_size=8192,
                 device=torch.device("cpu"), requires_grad=False, use_mixed_precision=True):
        super().__init__()
        # the source validates n_hid >= 64 and vocab_size >= 512; the twin does not, so the
        # tests can run small configs (n_hid 16)
        assert n_hid >= 1 and n_blk_per_group >= 1 and input_channels >= 1 and vocab_size >= 2
        self.n_hid, self.n_blk_per_group = n_hid, n_blk_per_group
        self.input_channels, self.vocab_size = input_channels, vocab_size
        self.device, self.requires_grad, self.use_mixed_precision = device, requires_grad, use_mixed_precision
        blk_range = range(self.n_blk_per_group)
        n_layers = self.group_count * self.n_blk_per_group

        def make_conv(a, b, k, use_float16=True):
            return Conv2d(a, b, k, use_float16=use_float16, device=device, requires_grad=requires_grad)

        def make_blk(a, b):
            return EncoderBlock(a, b, n_layers=n_layers, device=device, requires_grad=requires_grad)

        n = self.n_hid
        self.blocks = nn.Sequential(OrderedDict([
            ("input", make_conv(self.input_channels, 1 * n, 7)),
            ("group_1", nn.Sequential(OrderedDict([
                *[(f"block_{i + 1}", make_blk(1 * n, 1 * n)) for i in blk_range],
                ("pool", nn.MaxPool2d(kernel_size=2)),
            ]))),
            ("group_2", nn.Sequential(OrderedDict([
                *[(f"block_{i + 1}", make_blk(1 * n if i == 0 else 2 * n, 2 * n)) for i in blk_range],
                ("pool", nn.MaxPool2d(kernel_size=2)),
            ]))),
            ("group_3", nn.Sequential(OrderedDict([
                *[(f"block_{i + 1}", make_blk(2 * n if i == 0 else 4 * n, 4 * n)) for i in blk_range],
                ("pool", nn.MaxPool2d(kernel_size=2)),
            ]))),
            ("group_4", nn.Sequential(OrderedDict([
                *[(f"block_{i + 1}", make_blk(4 * n if i == 0 else 8 * n, 8 * n)) for i in blk_range],
            ]))),
            ("output", nn.Sequential(OrderedDict([
                ("relu", nn.ReLU()),
                ("conv", make_conv(8 * n, self.vocab_size, 1, use_float16=False)),
            ]))),
        ]))

    def forward(self, x):
        if len(x.shape) != 4:
            raise ValueError(f"input shape {x.shape} is not 4d")
        if x.shape[1] != self.input_channels:
            raise ValueError(f"input has {x.shape[1]} channels but model built for {self.input_channels}")
        if x.dtype != torch.float32:
            raise ValueError("input must have dtype torch.float32")
        return self.blocks(x)


def map_pixels(x):
    """dall_e.utils.map_pixels: [0, 1] -> [eps, 1 - eps] (the encoder's input range)."""
    if len(x.shape) != 4:
        raise ValueError("expected input to be 4d")
    if x.dtype != torch.float:
        raise ValueError("expected input to have type float")
    return (1 - 2 * logit_laplace_eps) * x + logit_laplace_eps


def tokens(encoder, x01):
    """Visual tokens [B, h, w] of images x01 [B, C, S, S] in [0, 1]."""
    with torch.no_grad():
        return torch.argmax(encoder(map_pixels(x01)), dim=1)
