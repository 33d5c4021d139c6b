"""LLM103 on attention written the way the well-known libraries write it (rewritten, not pasted).

Silent wherever SDPA is already used or cannot compute the same thing exactly; fires, with the
SDPA rewrite, on the straight-line chains it can replace.
"""

from __future__ import annotations

import textwrap

import pytest

from llmarch_lsp.analyzers import find_rule
from llmarch_lsp.document import Document
from llmarch_lsp.findings import Severity
from llmarch_lsp.fixes.apply import apply_fixes

RULE = find_rule("LLM103")


def _source(code: str) -> str:
    return textwrap.dedent(code).lstrip("\n")


def _findings(code: str):
    return RULE.run(Document(_source(code)))


def _fixed(code: str) -> str:
    source = _source(code)
    return apply_fixes(source, [f.fix for f in RULE.run(Document(source))]).text


# ---- must stay silent -----------------------------------------------------------------------------

SILENT = {
    # nanoGPT keeps its manual path as the fallback of a flash branch.
    "nanogpt-flash-fallback": """
        import math
        import torch
        import torch.nn as nn
        import torch.nn.functional as F
        class CausalSelfAttention(nn.Module):
            def forward(self, x):
                q, k, v = self.qkv(x)
                if self.flash:
                    y = torch.nn.functional.scaled_dot_product_attention(q, k, v, dropout_p=self.dropout if self.training else 0, is_causal=True)
                else:
                    att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(k.size(-1)))
                    att = att.masked_fill(self.bias[:, :, :self.T, :self.T] == 0, float("-inf"))
                    att = F.softmax(att, dim=-1)
                    y = att @ v
                return y
        """,
    # timm chooses between fused and manual on a flag, in the same forward.
    "timm-fused-attn-flag": """
        import torch.nn as nn
        import torch.nn.functional as F
        class Attention(nn.Module):
            def forward(self, x):
                q, k, v = self.qkv(x).unbind(0)
                if self.fused_attn:
                    x = F.scaled_dot_product_attention(q, k, v, dropout_p=self.attn_drop.p if self.training else 0.0)
                else:
                    q = q * self.scale
                    attn = q @ k.transpose(-2, -1)
                    attn = attn.softmax(dim=-1)
                    attn = self.attn_drop(attn)
                    x = attn @ v
                return x
        """,
    # Hugging Face eager attention returns the weights for output_attentions.
    "hf-eager-returns-weights": """
        import torch
        from torch import nn
        def eager_attention_forward(module, query, key, value, attention_mask, scaling, dropout=0.0):
            attn_weights = torch.matmul(query, key.transpose(2, 3)) * scaling
            if attention_mask is not None:
                attn_weights = attn_weights + attention_mask
            attn_weights = nn.functional.softmax(attn_weights, dim=-1, dtype=torch.float32).to(query.dtype)
            attn_weights = nn.functional.dropout(attn_weights, p=dropout, training=module.training)
            attn_output = torch.matmul(attn_weights, value)
            return attn_output, attn_weights
        """,
    # T5 adds a position bias computed by a module, and softmaxes in float32.
    "t5-position-bias": """
        import torch
        from torch import nn
        class T5Attention(nn.Module):
            def forward(self, q, k, v, mask):
                scores = torch.matmul(q, k.transpose(3, 2))
                position_bias = self.compute_bias(q.size(-2), k.size(-2)) + mask
                scores += position_bias
                attn_weights = nn.functional.softmax(scores.float(), dim=-1).type_as(scores)
                return torch.matmul(attn_weights, v)
        """,
    # BLOOM folds ALiBi and the scale into baddbmm.
    "bloom-alibi-baddbmm": """
        import torch
        from torch import nn
        class BloomAttention(nn.Module):
            def forward(self, q, k, v, alibi):
                scores = alibi.baddbmm(batch1=q, batch2=k, beta=self.beta, alpha=self.inv_norm_factor)
                probs = nn.functional.softmax(scores, dim=-1)
                return torch.bmm(probs, v)
        """,
    # x-transformers style einsum with a finite mask value: the rewrite would not be exact.
    "einsum-finite-mask": """
        import torch
        from torch import einsum
        def attend(q, k, v, mask, scale):
            dots = einsum("b h i d, b h j d -> b h i j", q, k) * scale
            dots = dots.masked_fill(~mask, -torch.finfo(dots.dtype).max)
            attn = dots.softmax(dim=-1)
            return einsum("b h i j, b h j d -> b h i d", attn, v)
        """,
    # A finite fill value gives fully masked rows a uniform distribution; SDPA gives NaN.
    "minus-1e9-fill": """
        import math
        import torch
        import torch.nn.functional as F
        def attention(query, key, value, mask):
            scores = torch.matmul(query, key.transpose(-2, -1)) / math.sqrt(query.size(-1))
            scores = scores.masked_fill(mask == 0, -1e9)
            p_attn = F.softmax(scores, dim=-1)
            return torch.matmul(p_attn, value), p_attn
        """,
    # The weights are kept on the module for visualisation.
    "weights-stored": """
        import torch.nn as nn
        class Attention(nn.Module):
            def forward(self, q, k, v):
                attn = (q @ k.transpose(-2, -1)) * self.scale
                attn = attn.softmax(dim=-1)
                self.last_attention = attn
                return attn @ v
        """,
    # Swin adds a relative-position bias table lookup before the softmax.
    "swin-relative-bias": """
        import torch.nn as nn
        class WindowAttention(nn.Module):
            def forward(self, q, k, v):
                q = q * self.scale
                attn = q @ k.transpose(-2, -1)
                attn = attn + self._get_rel_pos_bias()
                attn = self.softmax(attn)
                return attn @ v
        """,
    # Talking heads mix the heads between product and softmax.
    "talking-heads": """
        import torch.nn as nn
        class TalkingHeadAttention(nn.Module):
            def forward(self, q, k, v):
                attn = q @ k.transpose(-2, -1) * self.scale
                attn = self.proj_l(attn.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
                attn = attn.softmax(dim=-1)
                attn = self.proj_w(attn.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
                return attn @ v
        """,
    # A dropout that is not training-aware (F.dropout defaults to training=True): a rewrite would
    # either copy the bug or change behaviour, so it is left to a person.
    "dropout-always-on": """
        import torch.nn.functional as F
        def attend(q, k, v, p):
            att = (q @ k.transpose(-2, -1)) * q.size(-1) ** -0.5
            att = F.dropout(att.softmax(dim=-1), p)
            return att @ v
        """,
    # Softmax over the query axis is not attention over keys.
    "softmax-over-queries": """
        import torch.nn.functional as F
        def attend(q, k, v):
            att = (q @ k.transpose(-2, -1)) * q.size(-1) ** -0.5
            return F.softmax(att, dim=-2) @ v
        """,
    # The sequence is a loop-carried accumulation: the scores are read again after the chain.
    "scores-reused": """
        import torch
        def attend(q, k, v):
            scores = torch.matmul(q, k.transpose(-1, -2)) * 0.125
            probs = torch.softmax(scores, dim=-1)
            out = torch.matmul(probs, v)
            return out, scores.amax(dim=-1)
        """,
    # A learned temperature is a tensor; SDPA's `scale` takes a Python float.
    "learned-temperature": """
        import torch
        import torch.nn as nn
        class Attention(nn.Module):
            def forward(self, q, k, v):
                temperature = self.logit_scale.exp()
                attn = (q @ k.transpose(-2, -1)) * temperature
                return attn.softmax(dim=-1) @ v
        """,
    # k transposed on other axes than the last two (a channels-first layout): not q·kᵀ as SDPA means it.
    "other-axes": """
        import torch
        def attend(q, k, v):
            att = torch.matmul(q, k.transpose(1, 3)) * 0.125
            return torch.softmax(att, dim=-1) @ v
        """,
}


@pytest.mark.parametrize("code", list(SILENT.values()), ids=list(SILENT))
def test_silent_where_sdpa_is_used_or_cannot_compute_the_same(code):
    assert _findings(code) == []


# ---- must fire --------------------------------------------------------------------------------

def test_timm_model_without_a_fused_path():
    code = """
    import torch.nn as nn
    class ClassAttention(nn.Module):
        def __init__(self, dim, num_heads=8, attn_drop=0.0):
            super().__init__()
            self.scale = (dim // num_heads) ** -0.5
            self.attn_drop = nn.Dropout(attn_drop, inplace=True)
        def forward(self, q, k, v):
            B, N, C = v.shape
            attn = (q @ k.transpose(-2, -1)) * self.scale
            attn = attn.softmax(dim=-1)
            attn = self.attn_drop(attn)
            x = (attn @ v).transpose(1, 2).reshape(B, N, C)
            return x
    """
    (finding,) = _findings(code)
    assert finding.severity is Severity.INFO
    assert finding.span.line == 9 and finding.fix is not None and finding.fix.applicability == "unsafe"
    assert "O(T) memory instead of O(T²)" in finding.message
    assert "(Dao et al., 2022)" in finding.message
    fixed = _fixed(code)
    # The grouping parentheses around `attn @ v` go; the call is wrapped the nanoGPT way.
    assert (
        "        x = nn.functional.scaled_dot_product_attention(\n"
        "            q, k, v, dropout_p=self.attn_drop.p if self.training else 0.0, scale=self.scale\n"
        "        ).transpose(1, 2).reshape(B, N, C)\n"
    ) in fixed
    assert "import torch.nn.functional" not in fixed  # the file's own `nn` spells it


def test_memory_estimate_when_the_block_size_is_a_constructor_default():
    code = """
    import torch
    import torch.nn as nn
    import torch.nn.functional as F
    class CausalSelfAttention(nn.Module):
        def __init__(self, n_embd, n_head, block_size=2048):
            super().__init__()
            self.register_buffer("mask", torch.tril(torch.ones(block_size, block_size)))
        def forward(self, q, k, v):
            T = q.size(-2)
            att = (q @ k.transpose(-2, -1)) * (q.size(-1) ** -0.5)
            att = att.masked_fill(self.mask[:T, :T] == 0, float("-inf"))
            return F.softmax(att, dim=-1) @ v
    """
    (finding,) = _findings(code)
    assert "at T = 2,048 each (T, T) tensor holds 4,194,304 values, 16.0 MiB in float32" in finding.message
    assert "return F.scaled_dot_product_attention(q, k, v, is_causal=True)" in _fixed(code)


def test_memory_estimate_is_general_when_the_length_is_unknown():
    code = """
    import torch
    def attend(q, k, v):
        return torch.softmax(q @ k.transpose(-2, -1) * 0.125, dim=-1) @ v
    """
    (finding,) = _findings(code)
    assert finding.message.endswith("the saving grows with the square of the sequence length")
    assert "return torch.nn.functional.scaled_dot_product_attention(q, k, v, scale=0.125)" in _fixed(code)


def test_masks_become_sdpa_masks():
    code = """
    import torch
    import torch.nn.functional as F
    def keep_padding_out(q, k, v, key_padding):
        att = (q @ k.transpose(-2, -1)) * q.size(-1) ** -0.5
        att = att.masked_fill(key_padding, float("-inf"))
        return F.softmax(att, dim=-1) @ v
    def keep_where_allowed(q, k, v, allowed):
        att = (q @ k.transpose(-2, -1)) * q.size(-1) ** -0.5
        att = att.masked_fill(~allowed, -float("inf"))
        return F.softmax(att, dim=-1) @ v
    def causal_local(q, k, v):
        T = q.size(-2)
        tril = torch.tril(torch.ones(T, T, device=q.device))
        att = (q @ k.transpose(-2, -1)) * q.size(-1) ** -0.5
        att = att.masked_fill(tril == 0, float("-inf"))
        return F.softmax(att, dim=-1) @ v
    """
    fixed = _fixed(code)
    assert "F.scaled_dot_product_attention(q, k, v, attn_mask=~key_padding)" in fixed
    assert "F.scaled_dot_product_attention(q, k, v, attn_mask=allowed)" in fixed
    assert "F.scaled_dot_product_attention(q, k, v, is_causal=True)" in fixed
    assert RULE.run(Document(fixed)) == []


def test_a_tril_mask_that_is_not_square_at_the_top_left_is_not_taken_as_causal():
    code = """
    import torch
    import torch.nn.functional as F
    class Attention(torch.nn.Module):
        def forward(self, q, k, v, start, T):
            att = (q @ k.transpose(-2, -1)) * q.size(-1) ** -0.5
            att = att.masked_fill(self.bias[:, :, start:T, :T] == 0, float("-inf"))
            return F.softmax(att, dim=-1) @ v
    """
    fixed = _fixed(code)
    assert "is_causal" not in fixed
    assert "attn_mask=self.bias[:, :, start:T, :T] != 0" in fixed


def test_the_function_is_imported_when_no_alias_reaches_it():
    code = """
    from torch import softmax
    def attend(q, k, v):
        return softmax(q @ k.mT * 0.125, dim=-1) @ v
    """
    fixed = _fixed(code)
    assert "from torch.nn.functional import scaled_dot_product_attention" in fixed
    assert "return scaled_dot_product_attention(q, k, v, scale=0.125)" in fixed


def test_the_examples_model_gets_the_fused_call():
    from pathlib import Path

    source = (Path(__file__).resolve().parents[2] / "examples" / "model.py").read_text()
    (finding,) = RULE.run(Document(source))
    fixed = apply_fixes(source, [finding.fix]).text
    assert "        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)  # (B, nh, T, hs)\n" in fixed
