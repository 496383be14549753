"""The upstream modules whose state dicts tools/export_torch.py writes and tools/import_torch.py
reads, as twins built on tools/torchref/beit.py (same parameters, same math), differing only in
what their state_dict() holds:

  unilm_pretrain  microsoft/unilm beit/modeling_pretrain.py VisionTransformerForMaskedImageModeling
                  (read at commit cb36605436c4c364fd6c4fa7735754d87b551982): RelativePositionBias
                  comes from modeling_finetune.py, whose relative_position_index buffer is
                  registered persistent (register_buffer without persistent=False), so unilm's
                  state dicts hold rel_pos_bias.relative_position_index.
  unilm_finetune  microsoft/unilm beit/modeling_finetune.py VisionTransformer (read at commit
                  006195f51b10ac44773cb62bad854fdfebb3c6c8): per-block Attention with window_size
                  registers blocks.<i>.attn.relative_position_index persistent too; norm is
                  Identity with mean pooling (fc_norm), a LayerNorm without it.
  TimmBeit        huggingface/pytorch-image-models timm/models/beit.py Beit (read at commit
                  cec70b6779ea81cec0ca08ee4a257b52affd235a): the same parameter names as unilm's
                  fine-tuning model; Attention's relative_position_index and k_bias buffers are
                  non-persistent (absent from state dicts), RelativePositionBias's (the shared
                  table, use_shared_rel_pos_bias) is persistent; global_pool 'avg' -> norm Identity
                  + fc_norm, else norm + fc_norm Identity; num_classes 0 -> head Identity. No
                  mask_token or lm_head (timm's Beit is the classification model). (At the older
                  commit 0173a139a2c66db3a41ebfe1d8ac4fb02483642e the per-block index was still
                  persistent; load_state_dict(strict=False) on such a state dict, or export with
                  --layout unilm, covers those versions.)

Dropout is omitted (rate 0 at evaluation). Drop path is the twin's (scales supplied)."""
import torch
import torch.nn as nn

from beit import (Block, PatchEmbed, RelativePositionBias, VisionTransformerFinetune,
                  VisionTransformerForMaskedImageModeling, relative_position_index)


def _persist_index(module, persistent):
    """re-register every relative_position_index buffer under module with the given persistence"""
    for m in module.modules():
        if "relative_position_index" in m._buffers and m._buffers["relative_position_index"] is not None:
            m.register_buffer("relative_position_index", m._buffers["relative_position_index"], persistent=persistent)


def unilm_pretrain(**kw):
    m = VisionTransformerForMaskedImageModeling(**kw)
    _persist_index(m, True)
    return m


def unilm_finetune(**kw):
    m = VisionTransformerFinetune(**kw)
    _persist_index(m, True)
    return m


class TimmBeit(nn.Module):
    """timm's Beit (see above) for global_pool 'avg' or 'token', qkv_bias True, on the twin's
    blocks. forward(x) -> logits (or pooled features when num_classes = 0)."""

    def __init__(self, img_size=224, patch_size=16, in_chans=3, num_classes=1000, global_pool="avg", embed_dim=768,
                 depth=12, num_heads=12, mlp_ratio=4.0, init_values=None, use_abs_pos_emb=True,
                 use_rel_pos_bias=False, use_shared_rel_pos_bias=False, eps=1e-6):
        super().__init__()
        assert global_pool in ("avg", "token", "")
        self.global_pool = global_pool
        self.patch_embed = PatchEmbed(img_size, patch_size, in_chans, embed_dim)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, embed_dim))
        self.pos_embed = (nn.Parameter(torch.zeros(1, self.patch_embed.num_patches + 1, embed_dim))
                          if use_abs_pos_emb else None)
        if use_shared_rel_pos_bias:
            self.rel_pos_bias = RelativePositionBias(self.patch_embed.patch_shape, num_heads)
            _persist_index(self.rel_pos_bias, True)  # timm's RelativePositionBias: persistent
        else:
            self.rel_pos_bias = None
        ws = self.patch_embed.patch_shape if use_rel_pos_bias else None
        self.blocks = nn.ModuleList([Block(embed_dim, num_heads, int(embed_dim * mlp_ratio), init_values, eps,
                                           window_size=ws) for _ in range(depth)])
        for b in self.blocks:  # timm's Attention: k_bias a zero buffer, non-persistent
            b.attn.register_buffer("k_bias", torch.zeros(embed_dim), persistent=False)
        use_fc_norm = global_pool == "avg"
        self.norm = nn.Identity() if use_fc_norm else nn.LayerNorm(embed_dim, eps=eps)
        self.fc_norm = nn.LayerNorm(embed_dim, eps=eps) if use_fc_norm else nn.Identity()
        self.head = nn.Linear(embed_dim, num_classes) if num_classes > 0 else nn.Identity()

    def forward_features(self, x):
        x = self.patch_embed(x)
        x = torch.cat((self.cls_token.expand(x.shape[0], -1, -1), x), dim=1)
        if self.pos_embed is not None:
            x = x + self.pos_embed
        rel = self.rel_pos_bias() if self.rel_pos_bias is not None else None
        for blk in self.blocks:
            x = blk(x, rel_pos_bias=rel)
        return self.norm(x)

    def forward(self, x):
        x = self.forward_features(x)
        if self.global_pool:
            x = x[:, 1:].mean(dim=1) if self.global_pool == "avg" else x[:, 0]
        return self.head(self.fc_norm(x))


def randomise(module, seed, scale=0.02):
    """every parameter += scale * N(0, 1) (zero-initialised tables and biases get values too),
    so each name matters in a comparison"""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.add_(scale * torch.randn(p.shape, generator=g))
    return module


__all__ = ["unilm_pretrain", "unilm_finetune", "TimmBeit", "randomise", "relative_position_index"]
