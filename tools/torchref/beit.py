"""PyTorch reference of beit's encoder + masked-image-modeling heads (src/models/vit.c).

Written from the reference implementation, microsoft/unilm:
    beit/modeling_pretrain.py  (VisionTransformerForMaskedImageModeling)
        read at commit 2312c6fb384689d4ffdbc65360bcce7148cfbeed (identical model code at
        cb36605436c4c364fd6c4fa7735754d87b551982; the two differ only in **kwargs handling)
    beit/modeling_finetune.py  (Block, Attention, Mlp, PatchEmbed, RelativePositionBias, which
        modeling_pretrain imports), read at commit 006195f51b10ac44773cb62bad854fdfebb3c6c8
    beit/optim_factory.py      (get_num_layer_for_vit, get_parameter_groups: the decay and
        layer-id rules), read at commit 2312c6fb384689d4ffdbc65360bcce7148cfbeed
    beit/run_beit_pretraining.py (how pre-training builds the model: --rel_pos_bias on,
        --abs_pos_emb off, --layer_scale_init_value 0.1, create_optimizer(args, model) with the
        model's no_weight_decay() = {'pos_embed', 'cls_token'} as skip list and no layer decay)

timm is not used: the modules are defined here with unilm's (= timm's) parameter names and
shapes, so state_dict() names are the reference's. Changes against the reference, all for
testing or for the ablations the paper reports:
  * dropout / attn-dropout are omitted (rate 0 in BEiT pre-training);
  * drop path takes SUPPLIED per-sample scales (droppath_scales[L][2][B]: per block, branch 0
    = attention, 1 = MLP; 0 = dropped, 1/(1-p) = kept) instead of drawing them, exactly what
    timm's drop_path multiplies by; as in timm, where one DropPath module is called once per
    branch, each branch has its own keep mask;
  * variant "beit"   = the reference pre-training default: shared relative position bias
                       (rel_pos_bias.relative_position_bias_table), LayerScale gamma_1/gamma_2
                       (init_values; 0 or None disables), no absolute pos_embed;
    variant "vit"    = the paper's vanilla-ViT ablation: learned absolute pos_embed, no
                       relative bias; LayerScale as init_values says (0 or None: none, the
                       paper's vanilla ViT). Both keep qkv_bias=True (q_bias, v_bias;
                       k has no bias): the reference's MIM constructors always pass
                       qkv_bias=True, and the flag is independent of the variant flags.
  * head "tokens"    = the reference's lm_head Linear(D, V), cross-entropy (mean over masked);
    head "pixels"    = the pixel-regression ablation: the same module name `lm_head`, now
                       Linear(D, P*P*C), MSE (mean over masked patches and their P*P*C values)
                       against pixel_targets() of the masked patches.
  * init follows the reference exactly (its own trunc_normal_ wrapper truncates at +-1 std:
    a=-std, b=std), but the tests set every parameter explicitly.
"""
import math

import torch
import torch.nn as nn
import torch.nn.functional as F


def trunc_normal_(tensor, mean=0., std=1.):
    # modeling_pretrain.py's wrapper: timm's trunc_normal_(a=-std, b=std) -> cut at +-1 std
    nn.init.trunc_normal_(tensor, mean=mean, std=std, a=-std, b=std)


def drop_path(x, scales):
    """x[B,...] * scales[B] (supplied per-sample drop-path scales; None = identity)"""
    if scales is None:
        return x
    return x * scales.view(-1, *([1] * (x.dim() - 1))).to(x.dtype)


class Mlp(nn.Module):
    def __init__(self, in_features, hidden_features):
        super().__init__()
        self.fc1 = nn.Linear(in_features, hidden_features)
        self.act = nn.GELU()  # erf form
        self.fc2 = nn.Linear(hidden_features, in_features)

    def forward(self, x):
        return self.fc2(self.act(self.fc1(x)))


class Attention(nn.Module):
    def __init__(self, dim, num_heads, qkv_bias=True, window_size=None):
        super().__init__()
        self.num_heads = num_heads
        head_dim = dim // num_heads
        all_head_dim = head_dim * num_heads
        self.scale = head_dim ** -0.5
        self.qkv = nn.Linear(dim, all_head_dim * 3, bias=False)
        if qkv_bias:
            self.q_bias = nn.Parameter(torch.zeros(all_head_dim))
            self.v_bias = nn.Parameter(torch.zeros(all_head_dim))
        else:
            self.q_bias = None
            self.v_bias = None
        self.proj = nn.Linear(all_head_dim, dim)
        if window_size is not None:  # modeling_finetune's per-block table (use_rel_pos_bias)
            self.window_size = window_size
            nrd = (2 * window_size[0] - 1) * (2 * window_size[1] - 1) + 3
            self.relative_position_bias_table = nn.Parameter(torch.zeros(nrd, num_heads))
            self.register_buffer("relative_position_index", relative_position_index(window_size), persistent=False)
        else:
            self.relative_position_bias_table = None

    def forward(self, x, rel_pos_bias=None, keep=None):
        B, N, C = x.shape
        qkv_bias = None
        if self.q_bias is not None:
            qkv_bias = torch.cat((self.q_bias, torch.zeros_like(self.v_bias, requires_grad=False), self.v_bias))
        qkv = F.linear(input=x, weight=self.qkv.weight, bias=qkv_bias)
        qkv = qkv.reshape(B, N, 3, self.num_heads, -1).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]
        q = q * self.scale
        attn = (q @ k.transpose(-2, -1))
        if self.relative_position_bias_table is not None:
            T = self.window_size[0] * self.window_size[1] + 1
            b = self.relative_position_bias_table[self.relative_position_index.view(-1)].view(T, T, -1)
            attn = attn + b.permute(2, 0, 1).contiguous().unsqueeze(0)
        if rel_pos_bias is not None:
            attn = attn + rel_pos_bias
        attn = attn.softmax(dim=-1)
        if keep is not None:
            keep.append(attn)
        x = (attn @ v).transpose(1, 2).reshape(B, N, -1)
        return self.proj(x)


class Block(nn.Module):
    def __init__(self, dim, num_heads, mlp_hidden, init_values=None, eps=1e-6, window_size=None):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=eps)
        self.attn = Attention(dim, num_heads, qkv_bias=True, window_size=window_size)
        self.norm2 = nn.LayerNorm(dim, eps=eps)
        self.mlp = Mlp(dim, mlp_hidden)
        if init_values is not None and init_values > 0:
            self.gamma_1 = nn.Parameter(init_values * torch.ones((dim)), requires_grad=True)
            self.gamma_2 = nn.Parameter(init_values * torch.ones((dim)), requires_grad=True)
        else:
            self.gamma_1, self.gamma_2 = None, None

    def forward(self, x, rel_pos_bias=None, dp=None, keep=None):
        # dp: [2][B] scales of the attention and the MLP branch (each its own draw), or None
        dp_att, dp_mlp = (None, None) if dp is None else (dp[0], dp[1])
        if self.gamma_1 is None:
            x = x + drop_path(self.attn(self.norm1(x), rel_pos_bias=rel_pos_bias, keep=keep), dp_att)
            x = x + drop_path(self.mlp(self.norm2(x)), dp_mlp)
        else:
            x = x + drop_path(self.gamma_1 * self.attn(self.norm1(x), rel_pos_bias=rel_pos_bias, keep=keep), dp_att)
            x = x + drop_path(self.gamma_2 * self.mlp(self.norm2(x)), dp_mlp)
        return x


class PatchEmbed(nn.Module):
    def __init__(self, img_size, patch_size, in_chans, embed_dim):
        super().__init__()
        self.patch_shape = (img_size // patch_size, img_size // patch_size)
        self.num_patches = self.patch_shape[0] * self.patch_shape[1]
        self.proj = nn.Conv2d(in_chans, embed_dim, kernel_size=patch_size, stride=patch_size)

    def forward(self, x):
        return self.proj(x).flatten(2).transpose(1, 2)


def relative_position_index(window_size):
    """unilm RelativePositionBias's index buffer [T, T], T = Wh*Ww + 1"""
    num_relative_distance = (2 * window_size[0] - 1) * (2 * window_size[1] - 1) + 3
    coords_h = torch.arange(window_size[0])
    coords_w = torch.arange(window_size[1])
    coords = torch.stack(torch.meshgrid([coords_h, coords_w], indexing="ij"))
    coords_flatten = torch.flatten(coords, 1)
    relative_coords = coords_flatten[:, :, None] - coords_flatten[:, None, :]
    relative_coords = relative_coords.permute(1, 2, 0).contiguous()
    relative_coords[:, :, 0] += window_size[0] - 1
    relative_coords[:, :, 1] += window_size[1] - 1
    relative_coords[:, :, 0] *= 2 * window_size[1] - 1
    idx = torch.zeros(size=(window_size[0] * window_size[1] + 1,) * 2, dtype=relative_coords.dtype)
    idx[1:, 1:] = relative_coords.sum(-1)
    idx[0, 0:] = num_relative_distance - 3
    idx[0:, 0] = num_relative_distance - 2
    idx[0, 0] = num_relative_distance - 1
    return idx


class RelativePositionBias(nn.Module):
    def __init__(self, window_size, num_heads):
        super().__init__()
        self.window_size = window_size
        self.num_relative_distance = (2 * window_size[0] - 1) * (2 * window_size[1] - 1) + 3
        self.relative_position_bias_table = nn.Parameter(torch.zeros(self.num_relative_distance, num_heads))
        # derived from the grid, not learned: non-persistent as in current timm, so checkpoints
        # (ours and timm's) hold only the table
        self.register_buffer("relative_position_index", relative_position_index(window_size), persistent=False)

    def forward(self):
        T = self.window_size[0] * self.window_size[1] + 1
        b = self.relative_position_bias_table[self.relative_position_index.view(-1)].view(T, T, -1)
        return b.permute(2, 0, 1).contiguous()  # nH, T, T


class VisionTransformerForMaskedImageModeling(nn.Module):
    def __init__(self, img_size=224, patch_size=16, in_chans=3, vocab_size=8192, embed_dim=768, depth=12,
                 num_heads=12, mlp_hidden=3072, variant="beit", head="tokens", init_values=0.1,
                 eps=1e-6, init_std=0.02):
        super().__init__()
        assert variant in ("beit", "vit") and head in ("tokens", "pixels")
        self.variant, self.head = variant, head
        self.patch_size, self.in_chans = patch_size, in_chans
        self.embed_dim = embed_dim
        self.patch_embed = PatchEmbed(img_size, patch_size, in_chans, embed_dim)
        num_patches = self.patch_embed.num_patches
        self.cls_token = nn.Parameter(torch.zeros(1, 1, embed_dim))
        self.mask_token = nn.Parameter(torch.zeros(1, 1, embed_dim))
        use_abs_pos_emb = variant == "vit"
        use_shared_rel_pos_bias = variant == "beit"
        if use_abs_pos_emb:
            self.pos_embed = nn.Parameter(torch.zeros(1, num_patches + 1, embed_dim))
        else:
            self.pos_embed = None
        if use_shared_rel_pos_bias:
            self.rel_pos_bias = RelativePositionBias(self.patch_embed.patch_shape, num_heads)
        else:
            self.rel_pos_bias = None
        self.blocks = nn.ModuleList([Block(embed_dim, num_heads, mlp_hidden, init_values, eps)
                                     for _ in range(depth)])
        self.norm = nn.LayerNorm(embed_dim, eps=eps)
        self.init_std = init_std
        out = vocab_size if head == "tokens" else patch_size * patch_size * in_chans
        self.lm_head = nn.Linear(embed_dim, out)

        if self.pos_embed is not None:
            trunc_normal_(self.pos_embed, std=self.init_std)
        trunc_normal_(self.cls_token, std=self.init_std)
        trunc_normal_(self.mask_token, std=self.init_std)
        trunc_normal_(self.lm_head.weight, std=self.init_std)
        self.apply(self._init_weights)
        self.fix_init_weight()

    def fix_init_weight(self):
        def rescale(param, layer_id):
            param.div_(math.sqrt(2.0 * layer_id))

        for layer_id, layer in enumerate(self.blocks):
            rescale(layer.attn.proj.weight.data, layer_id + 1)
            rescale(layer.mlp.fc2.weight.data, layer_id + 1)

    def _init_weights(self, m):
        if isinstance(m, nn.Linear):
            trunc_normal_(m.weight, std=self.init_std)
            if m.bias is not None:
                nn.init.constant_(m.bias, 0)
        elif isinstance(m, nn.LayerNorm):
            nn.init.constant_(m.bias, 0)
            nn.init.constant_(m.weight, 1.0)
        elif isinstance(m, nn.Conv2d):
            trunc_normal_(m.weight, std=self.init_std)
            if m.bias is not None:
                nn.init.constant_(m.bias, 0)

    def no_weight_decay(self):
        return {'pos_embed', 'cls_token'}

    def get_num_layers(self):
        return len(self.blocks)

    def forward_features(self, x, bool_masked_pos, droppath_scales=None, keep=None):
        """keep: optional dict filled with 'blocks' (each block's output) and 'attn' (each
        block's attention probabilities [B, nH, T, T])"""
        x = self.patch_embed(x)
        batch_size, seq_len, _ = x.size()
        cls_tokens = self.cls_token.expand(batch_size, -1, -1)
        if bool_masked_pos is not None:
            mask_token = self.mask_token.expand(batch_size, seq_len, -1)
            w = bool_masked_pos.unsqueeze(-1).type_as(mask_token)
            x = x * (1 - w) + mask_token * w
        x = torch.cat((cls_tokens, x), dim=1)
        if self.pos_embed is not None:
            x = x + self.pos_embed
        rel_pos_bias = self.rel_pos_bias() if self.rel_pos_bias is not None else None
        for i, blk in enumerate(self.blocks):
            dp = droppath_scales[i] if droppath_scales is not None else None
            x = blk(x, rel_pos_bias=rel_pos_bias, dp=dp, keep=keep["attn"] if keep is not None else None)
            if keep is not None:
                keep["blocks"].append(x)
        return self.norm(x)

    def forward(self, x, bool_masked_pos, droppath_scales=None, return_all_tokens=False, keep=None):
        feats = self.forward_features(x, bool_masked_pos, droppath_scales, keep)
        x = feats[:, 1:]
        if return_all_tokens:
            return self.lm_head(x.reshape(-1, x.shape[-1])), feats
        return self.lm_head(x[bool_masked_pos]), feats


def pixel_targets(img, patch_size, norm_per_patch):
    """[B, Np, C*P*P] patches in (c, py, px) order (what flattening a Conv2d weight implies);
    norm_per_patch: (x - mean) / sqrt(var_unbiased + 1e-6) per patch (MAE's norm_pix_loss)."""
    B, C, H, W = img.shape
    P = patch_size
    p = img.reshape(B, C, H // P, P, W // P, P).permute(0, 2, 4, 1, 3, 5).reshape(B, (H // P) * (W // P), C * P * P)
    if norm_per_patch:
        mean = p.mean(dim=-1, keepdim=True)
        var = p.var(dim=-1, keepdim=True)  # unbiased
        p = (p - mean) / (var + 1.e-6) ** .5
    return p


def mim_loss(model, out, targets):
    """tokens: mean cross-entropy; pixels: MSE mean over masked patches and values"""
    if model.head == "tokens":
        return F.cross_entropy(out, targets)
    return F.mse_loss(out, targets)


# ---- the reference's optimizer rules (optim_factory.py), verbatim logic ----
def get_num_layer_for_vit(var_name, num_max_layer):
    if var_name in ("cls_token", "mask_token", "pos_embed"):
        return 0
    elif var_name.startswith("patch_embed"):
        return 0
    elif var_name.startswith("rel_pos_bias"):
        return num_max_layer - 1
    elif var_name.startswith("blocks"):
        layer_id = int(var_name.split('.')[1])
        return layer_id + 1
    else:
        return num_max_layer - 1


def param_rules(model):
    """[(name, shape, decay, layer_id)] by get_parameter_groups' rule with the model's
    no_weight_decay() as skip list, and get_num_layer_for_vit with num_max_layer = L + 2."""
    skip = model.no_weight_decay()
    L = model.get_num_layers()
    rows = []
    for name, param in model.named_parameters():
        decay = not (len(param.shape) == 1 or name.endswith(".bias") or name in skip)
        rows.append((name, tuple(param.shape), int(decay), get_num_layer_for_vit(name, L + 2)))
    return rows


class VisionTransformerFinetune(nn.Module):
    """unilm beit/modeling_finetune.py VisionTransformer as run_class_finetuning builds it for
    BEiT: use_rel_pos_bias (a table per block), no shared table, no abs pos (variant "beit");
    or abs pos_embed without relative bias (variant "vit"); LayerScale as init_values says, in
    either variant (0 or None: none). pool "mean":
    norm = Identity, fc_norm(mean of patch tokens); pool "cls": norm, x[:, 0]. head init:
    trunc normal(std .02) then weight and bias * init_scale. Dropout omitted (rate 0)."""

    def __init__(self, img_size, patch_size, in_chans, num_classes, embed_dim, depth, num_heads,
                 mlp_hidden, variant="beit", init_values=0.1, pool="mean", init_scale=0.001, eps=1e-6,
                 init_std=0.02):
        super().__init__()
        self.patch_embed = PatchEmbed(img_size, patch_size, in_chans, embed_dim)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, embed_dim))
        self.pool = pool
        rel = variant == "beit"
        self.pos_embed = nn.Parameter(torch.zeros(1, self.patch_embed.num_patches + 1, embed_dim)) if not rel else None
        ws = self.patch_embed.patch_shape if rel else None
        self.blocks = nn.ModuleList([Block(embed_dim, num_heads, mlp_hidden, init_values, eps, window_size=ws)
                                     for _ in range(depth)])
        self.norm = nn.Identity() if pool == "mean" else nn.LayerNorm(embed_dim, eps=eps)
        self.fc_norm = nn.LayerNorm(embed_dim, eps=eps) if pool == "mean" else None
        self.head = nn.Linear(embed_dim, num_classes)
        self.head.weight.data.mul_(init_scale)
        self.head.bias.data.mul_(init_scale)

    def no_weight_decay(self):
        return {'pos_embed', 'cls_token'}

    def get_num_layers(self):
        return len(self.blocks)

    def forward_features(self, x, droppath_scales=None, keep=None):
        x = self.patch_embed(x)
        x = torch.cat((self.cls_token.expand(x.shape[0], -1, -1), x), dim=1)
        if self.pos_embed is not None:
            x = x + self.pos_embed
        for i, blk in enumerate(self.blocks):
            dp = droppath_scales[i] if droppath_scales is not None else None
            x = blk(x, dp=dp, keep=keep["attn"] if keep is not None else None)
            if keep is not None:
                keep["blocks"].append(x)
        x = self.norm(x)
        if self.fc_norm is not None:
            return self.fc_norm(x[:, 1:, :].mean(1))
        return x[:, 0]

    def forward(self, x, droppath_scales=None, keep=None):
        return self.head(self.forward_features(x, droppath_scales, keep))
