"""PyTorch twin of the light segmentation decoder (src/models/segdec.c, include/beit/segdec.h),
with the per-pixel cross-entropy and the segmentation metric (mmseg's confusion-matrix mIoU).

The decoder reads ntaps ViT block outputs taps[i] [B, T, D] (the residual stream, before any
norm; T = gh*gw + 1, token 0 = CLS is dropped):

    u_i    = LayerNorm_i(taps[i][:, 1:, :])            eps 1e-6
    z_i    = Linear_i(u_i)                              [B, Np, E]
    s      = sum_i z_i  -> image [B, E, gh, gw]          (patch n = y*gw + x)
    h1     = ReLU(ConvTranspose2d(E, E, P, stride=P)(s))
    h2     = ReLU(Conv2d(E, E, 3, padding=1)(h1))
    logits = Conv2d(E, NC, 1)(h2)                       [B, NC, gh*P, gw*P]

The fine-tuning model registers it as `decoder`, so state_dict names read
decoder.taps.{i}.norm.{weight,bias}, decoder.taps.{i}.proj.{weight,bias}, decoder.up.*,
decoder.conv.*, decoder.cls.* (SegDecoderHolder below gives exactly those names).
Init here is PyTorch's default; the C init (documented in segdec.h) differs and the tests set
every parameter explicitly.
"""
import torch
import torch.nn as nn
import torch.nn.functional as F


class Tap(nn.Module):
    def __init__(self, dim, width, eps=1e-6):
        super().__init__()
        self.norm = nn.LayerNorm(dim, eps=eps)
        self.proj = nn.Linear(dim, width)

    def forward(self, x):
        return self.proj(self.norm(x[:, 1:, :]))


class SegDecoder(nn.Module):
    def __init__(self, ntaps, dim, grid, patch, width, num_classes, eps=1e-6):
        super().__init__()
        self.grid = grid  # (gh, gw)
        self.taps = nn.ModuleList([Tap(dim, width, eps) for _ in range(ntaps)])
        self.up = nn.ConvTranspose2d(width, width, kernel_size=patch, stride=patch)
        self.conv = nn.Conv2d(width, width, kernel_size=3, padding=1)
        self.cls = nn.Conv2d(width, num_classes, kernel_size=1)

    def forward(self, taps, keep=None):
        """keep: optional dict, filled with the ReLU inputs 'pre1' (up) and 'pre2' (conv)"""
        assert len(taps) == len(self.taps)
        s = sum(t(x) for t, x in zip(self.taps, taps))  # [B, Np, E]
        B, Np, E = s.shape
        gh, gw = self.grid
        s = s.transpose(1, 2).reshape(B, E, gh, gw)
        pre1 = self.up(s)
        pre2 = self.conv(F.relu(pre1))
        if keep is not None:
            keep["pre1"], keep["pre2"] = pre1, pre2
        return self.cls(F.relu(pre2))


class SegDecoderHolder(nn.Module):
    """only there to give the parameters their `decoder.` prefix"""

    def __init__(self, *args, **kwargs):
        super().__init__()
        self.decoder = SegDecoder(*args, **kwargs)

    def forward(self, taps, keep=None):
        return self.decoder(taps, keep)


def param_rules(model):
    """[(name, shape, decay)]: decay 0 for 1-D tensors and *.bias, else 1"""
    return [(n, tuple(p.shape), int(not (p.dim() == 1 or n.endswith(".bias"))))
            for n, p in model.named_parameters()]


def seg_ce_sum(logits, labels):
    """sum over pixels of -log softmax(logits)[label]; logits [B, NC, H, W], labels [B, H, W]"""
    return F.cross_entropy(logits, labels.long(), reduction="sum")


def confusion(logits, labels, ncls):
    """conf[true, pred] counts, pred = argmax over channels (int64 [ncls, ncls])"""
    pred = logits.argmax(dim=1).reshape(-1)
    true = labels.long().reshape(-1)
    return torch.bincount(true * ncls + pred, minlength=ncls * ncls).reshape(ncls, ncls)


def scores(conf):
    """(mIoU, pixel accuracy, classes counted) the way mmseg's mean_iou does it: per class
    IoU = intersect / union with union = area_pred + area_label - intersect, NaN for 0/0,
    then nanmean; pixel accuracy = trace / total"""
    conf = conf.to(torch.float64)
    tp = conf.diag()
    union = conf.sum(0) + conf.sum(1) - tp
    iou = tp / union  # NaN where union == 0
    counted = ~torch.isnan(iou)
    return float(iou[counted].mean()), float(tp.sum() / conf.sum()), int(counted.sum())
