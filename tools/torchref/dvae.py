"""PyTorch reference of beit's dVAE tokenizer (DALL-E style, small): the same architecture,
parameter names and losses as src/models/dvae.c, written independently from the C code.
Used by the fixture generator (tests/fixtures/gen_dvae.py) and the benchmark (tools/bench).

Encoder: input x in [0,1] is mapped x -> 0.8 x + 0.1 (DALL-E's map_pixels), then
    stem conv3x3(C -> w0)
    group g = 0..G-1: (g > 0: maxpool 2x2) then `blocks` residual blocks at width w_g
    out: relu, conv1x1(w_{G-1} -> V)                                      -> logits [B,V,h,w]
Decoder: z [B,V,h,w] (relaxed one-hot, or one-hot of hard tokens)
    stem conv1x1(V -> w_{G-1})
    group g = G-1..0: `blocks` residual blocks at width w_g, then (g > 0: nearest x2)
    out: relu, conv3x3(w0 -> C) for MSE, (w0 -> 2C) for logit-Laplace    -> stats [B,C',H,W]
Residual block(in -> out): y = id(x) + conv3x3(relu(conv3x3(relu(x))))
    with id = identity when in == out, else conv1x1(in -> out).

Losses (per-pixel means over the batch):
    mse:           mean((out - x)^2)                         mean output = out
    logit_laplace: x' = 0.8 x + 0.1, mu = out[:, :C], ln b = out[:, C:],
                   nll = ln(2b) + |logit(x') - mu| / b + ln(x'(1 - x'))
                   mean output = clamp((sigmoid(mu) - 0.1) / 0.8, 0, 1)
    KL(q || uniform) per position: sum_v q_v ln q_v + ln V, q = softmax(logits); mean over positions
    loss = recon + kl_weight * kl
Gumbel-softmax: z = softmax((logits + g) / tau) over V with g ~ Gumbel(0, 1) (supplied).
"""
import math

import torch
import torch.nn as nn
import torch.nn.functional as F


class ResBlock(nn.Module):
    def __init__(self, cin, cout):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, padding=1)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1)
        self.idconv = nn.Conv2d(cin, cout, 1) if cin != cout else None

    def forward(self, x):
        h = self.conv2(F.relu(self.conv1(F.relu(x))))
        return (self.idconv(x) if self.idconv is not None else x) + h


class Encoder(nn.Module):
    def __init__(self, in_chans, widths, blocks, vocab):
        super().__init__()
        self.stem = nn.Conv2d(in_chans, widths[0], 3, padding=1)
        self.groups = nn.ModuleList()
        cin = widths[0]
        for w in widths:
            self.groups.append(nn.ModuleList([ResBlock(cin if b == 0 else w, w) for b in range(blocks)]))
            cin = w
        self.out = nn.Conv2d(widths[-1], vocab, 1)

    def forward(self, x):
        h = self.stem(0.8 * x + 0.1)
        for g, blocks in enumerate(self.groups):
            if g > 0:
                h = F.max_pool2d(h, 2)
            for blk in blocks:
                h = blk(h)
        return self.out(F.relu(h))


class Decoder(nn.Module):
    def __init__(self, out_chans, widths, blocks, vocab):
        super().__init__()
        G = len(widths)
        self.stem = nn.Conv2d(vocab, widths[-1], 1)
        self.groups = nn.ModuleList()
        cin = widths[-1]
        for g in reversed(range(G)):
            w = widths[g]
            self.groups.append(nn.ModuleList([ResBlock(cin if b == 0 else w, w) for b in range(blocks)]))
            cin = w
        self.out = nn.Conv2d(widths[0], out_chans, 3, padding=1)

    def forward(self, z):
        h = self.stem(z)
        G = len(self.groups)
        for i, blocks in enumerate(self.groups):
            for blk in blocks:
                h = blk(h)
            if i < G - 1:
                h = F.interpolate(h, scale_factor=2, mode="nearest")
        return self.out(F.relu(h))


class DVAE(nn.Module):
    def __init__(self, in_chans=1, widths=(32, 64, 128), blocks=1, vocab=8192, recon="mse"):
        super().__init__()
        self.in_chans, self.vocab, self.recon = in_chans, vocab, recon
        self.encoder = Encoder(in_chans, widths, blocks, vocab)
        self.decoder = Decoder(in_chans * (2 if recon == "logit_laplace" else 1), widths, blocks, vocab)

    def losses(self, x, gumbel, tau, kl_weight):
        """x [B,C,H,W] in [0,1]; gumbel [B,V,h,w]. Returns (loss, recon, kl, logits, out)."""
        logits = self.encoder(x)
        z = F.softmax((logits + gumbel) / tau, dim=1)
        out = self.decoder(z)
        C = self.in_chans
        if self.recon == "mse":
            recon = ((out - x) ** 2).mean()
        else:
            xp = 0.8 * x + 0.1
            mu, lnb = out[:, :C], out[:, C:]
            y = torch.log(xp) - torch.log1p(-xp)
            recon = (math.log(2.0) + lnb + (y - mu).abs() * torch.exp(-lnb) + torch.log(xp * (1 - xp))).mean()
        logq = F.log_softmax(logits, dim=1)
        kl = ((logq.exp() * logq).sum(dim=1) + math.log(self.vocab)).mean()
        return recon + kl_weight * kl, recon, kl, logits, out

    @torch.no_grad()
    def tokens(self, x):
        return self.encoder(x).argmax(dim=1)

    @torch.no_grad()
    def reconstruct(self, tokens):
        z = F.one_hot(tokens, self.vocab).permute(0, 3, 1, 2).to(self.decoder.stem.weight.dtype)
        out = self.decoder(z)
        if self.recon == "mse":
            return out.clamp(0, 1)
        mu = out[:, : self.in_chans]
        return ((torch.sigmoid(mu) - 0.1) / 0.8).clamp(0, 1)
