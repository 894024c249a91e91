"""Shared helpers for the parity / kvpress golden generators (tools/, off the runtime path).

- a tiny byte-level BPE vocabulary (512 ids) trained with Hugging Face `tokenizers` on the repo's
  demo context, usable both as a GGUF "gpt2" vocabulary and as an HF tokenizer;
- random weights for tiny llama / qwen2 / qwen3 / gemma3 models, written to GGUF exactly the way
  llama.cpp's convert_hf_to_gguf.py lays them out (metadata key names, tensor names, LLaMA Q/K row
  permutation, Gemma (1 + w) norm shift, LLaMA 3 rope_freqs tensor), and the same weights as an HF
  transformers model (f32, eager attention) for reference logits.

Weights are drawn once in "HF layout" and converted to GGUF layout here, so the two sides can only
agree if our engine undoes the GGUF conventions the way llama.cpp does.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parent.parent
CONTEXT_TXT = REPO / "tools" / "data" / "demo" / "context.txt"

SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]  # ids 0, 1, 2 of the tiny BPE vocab
# Qwen3-like chat template (ChatML + empty think block when thinking is disabled).
TINY_CHAT_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n{{ message['content'] }}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n"
    "{% if enable_thinking is defined and enable_thinking is false %}<think>\n\n</think>\n\n{% endif %}"
    "{% endif %}"
)


# ----------------------------------------------------------------------------- tokenizer


def train_tiny_bpe(vocab_size: int = 512):
    """Byte-level BPE (GPT-2 pre-tokenizer regex, no prefix space) trained on the demo context.
    Returns (tokenizers.Tokenizer, tokens in id order as GPT-2-mapped strings, merges 'a b')."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=SPECIALS,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train([str(CONTEXT_TXT)], trainer)
    j = json.loads(tok.to_str())
    vocab = j["model"]["vocab"]
    tokens = [None] * len(vocab)
    for t, i in vocab.items():
        tokens[i] = t
    assert all(t is not None for t in tokens) and tokens[:3] == SPECIALS
    merges = [m if isinstance(m, str) else " ".join(m) for m in j["model"]["merges"]]
    return tok, tokens, merges


def hf_tiny_tokenizer(tok):
    from transformers import PreTrainedTokenizerFast

    t = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token=None, eos_token="<|im_end|>",
                                pad_token="<|endoftext|>", unk_token=None)
    t.chat_template = TINY_CHAT_TEMPLATE
    return t


def write_bpe_vocab(w, tokens, merges, eos_id=2, pad_id=0):
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre("gpt2")
    w.add_token_list(tokens)
    w.add_token_types([3 if t in SPECIALS else 1 for t in tokens])  # 3 = control, 1 = normal
    w.add_token_merges(merges)
    w.add_eos_token_id(eos_id)
    w.add_pad_token_id(pad_id)
    w.add_add_bos_token(False)
    w.add_chat_template(TINY_CHAT_TEMPLATE)


def write_spm_vocab(w, bpe_tokens):
    """A sentencepiece-style ("llama") vocabulary of the same size as the BPE one: <pad>, <eos>,
    <bos>, <unk>, <start_of_turn>, <end_of_turn>, 256 byte tokens <0xXX>, then whole-word pieces
    (U+2581 for spaces) taken from the BPE vocabulary, scores = -rank. Only needs to load; the
    parity goldens feed token ids directly."""
    byte_dec = {c: b for b, c in gpt2_byte_map().items()}
    n = len(bpe_tokens)
    pieces = ["<pad>", "<eos>", "<bos>", "<unk>", "<start_of_turn>", "<end_of_turn>"]
    types = [3, 3, 3, 2, 3, 3]
    pieces += [f"<0x{b:02X}>" for b in range(256)]
    types += [6] * 256
    seen = set(pieces)
    for t in bpe_tokens[len(SPECIALS) + 256:]:
        try:
            s = bytes(byte_dec[c] for c in t).decode("utf-8")
        except (KeyError, UnicodeDecodeError):
            continue
        s = s.replace(" ", "\u2581")
        if s and s not in seen and len(pieces) < n:
            pieces.append(s)
            types.append(1)
            seen.add(s)
    k = 0
    while len(pieces) < n:
        pieces.append(f"<unused{k}>")
        types.append(5)  # unused
        k += 1
    scores = [0.0] * 262 + [-float(i) for i in range(n - 262)]
    w.add_tokenizer_model("llama")
    w.add_tokenizer_pre("default")
    w.add_token_list(pieces)
    w.add_token_scores(scores)
    w.add_token_types(types)
    w.add_bos_token_id(2)
    w.add_eos_token_id(1)
    w.add_unk_token_id(3)
    w.add_pad_token_id(0)
    w.add_add_bos_token(True)
    w.add_add_eos_token(False)
    w.add_add_space_prefix(False)


def gpt2_byte_map():
    bs = list(range(33, 127)) + list(range(161, 173)) + list(range(174, 256))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return {b: chr(c) for b, c in zip(bs, cs)}


# ----------------------------------------------------------------------------- models


@dataclass
class TinySpec:
    name: str
    arch: str  # llama | qwen2 | qwen3 | gemma3
    n_layers: int = 2
    d_model: int = 64
    n_heads: int = 4
    n_kv_heads: int = 2
    head_dim: int = 16
    d_ff: int = 128
    vocab: int = 512
    tied: bool = True
    rope_base: float = 10000.0
    llama3_scaling: dict | None = None  # {"factor", "low_freq_factor", "high_freq_factor", "original_max_position_embeddings"}
    linear_scaling: float | None = None  # gemma3 global layers
    sliding_window: int = 0  # gemma3
    norm_eps: float = 1e-5
    wtype: str = "f16"  # storage type of 2-D weights: f16 or f32
    context_length: int = 512
    seed: int = 0
    embed_std: float = 1.0  # small for tied models, else greedy just repeats the last token
    final_norm: float = 1.0  # scale of output_norm (sharpens the logits of tied models)
    extra: dict = field(default_factory=dict)


def random_weights(spec: TinySpec) -> dict[str, np.ndarray]:
    """HF-named f32 weights. 2-D weights are rounded to the GGUF storage type so that both sides use
    bit-identical values."""
    rng = np.random.default_rng(spec.seed)
    d, hd, H, KV, ff, V = spec.d_model, spec.head_dim, spec.n_heads, spec.n_kv_heads, spec.d_ff, spec.vocab
    gemma = spec.arch == "gemma3"

    def mat(rows, cols, std=None):
        a = rng.standard_normal((rows, cols)).astype(np.float32) * (std if std is not None else 1 / math.sqrt(cols))
        return a.astype(np.float16).astype(np.float32) if spec.wtype == "f16" else a

    def norm(n):
        # HF Gemma stores w with effective scale (1 + w); others store the scale itself.
        base = 0.0 if gemma else 1.0
        return (base + 0.1 * rng.standard_normal(n)).astype(np.float32)

    def vec(n, std):
        return (std * rng.standard_normal(n)).astype(np.float32)

    W = {"model.embed_tokens.weight": mat(V, d, spec.embed_std)}
    for i in range(spec.n_layers):
        p = f"model.layers.{i}."
        W[p + "input_layernorm.weight"] = norm(d)
        W[p + "self_attn.q_proj.weight"] = mat(H * hd, d)
        W[p + "self_attn.k_proj.weight"] = mat(KV * hd, d)
        W[p + "self_attn.v_proj.weight"] = mat(KV * hd, d)
        W[p + "self_attn.o_proj.weight"] = mat(d, H * hd)
        if spec.arch == "qwen2":
            W[p + "self_attn.q_proj.bias"] = vec(H * hd, 0.5)
            W[p + "self_attn.k_proj.bias"] = vec(KV * hd, 0.5)
            W[p + "self_attn.v_proj.bias"] = vec(KV * hd, 0.5)
        if spec.arch in ("qwen3", "gemma3"):
            W[p + "self_attn.q_norm.weight"] = norm(hd)
            W[p + "self_attn.k_norm.weight"] = norm(hd)
        W[p + "post_attention_layernorm.weight"] = norm(d)
        if gemma:
            W[p + "pre_feedforward_layernorm.weight"] = norm(d)
            W[p + "post_feedforward_layernorm.weight"] = norm(d)
        W[p + "mlp.gate_proj.weight"] = mat(ff, d)
        W[p + "mlp.up_proj.weight"] = mat(ff, d)
        W[p + "mlp.down_proj.weight"] = mat(d, ff)
    W["model.norm.weight"] = norm(d) + np.float32(spec.final_norm - 1.0)
    if not spec.tied:
        W["lm_head.weight"] = mat(V, d, 0.5)
    return W


def hf_config(spec: TinySpec):
    import transformers as tf

    common = dict(vocab_size=spec.vocab, hidden_size=spec.d_model, intermediate_size=spec.d_ff,
                  num_hidden_layers=spec.n_layers, num_attention_heads=spec.n_heads,
                  num_key_value_heads=spec.n_kv_heads, head_dim=spec.head_dim, rms_norm_eps=spec.norm_eps,
                  max_position_embeddings=spec.context_length, tie_word_embeddings=spec.tied,
                  bos_token_id=None, eos_token_id=2, pad_token_id=0)
    if spec.arch == "gemma3":
        full = {"rope_type": "default", "rope_theta": spec.rope_base}
        if spec.linear_scaling:
            full = {"rope_type": "linear", "factor": spec.linear_scaling, "rope_theta": spec.rope_base}
        common.update(bos_token_id=2, eos_token_id=1)
        return tf.Gemma3TextConfig(**common, query_pre_attn_scalar=spec.head_dim, sliding_window=spec.sliding_window,
                                   layer_types=["sliding_attention" if (i + 1) % 6 else "full_attention"
                                                for i in range(spec.n_layers)],
                                   rope_parameters={"full_attention": full,
                                                    "sliding_attention": {"rope_type": "default",
                                                                          "rope_theta": 10000.0}},
                                   hidden_activation="gelu_pytorch_tanh", final_logit_softcapping=None,
                                   attn_logit_softcapping=None)
    rope = {"rope_type": "default", "rope_theta": spec.rope_base}
    if spec.llama3_scaling:
        rope = {"rope_type": "llama3", "rope_theta": spec.rope_base, **spec.llama3_scaling}
    if spec.arch == "llama":
        return tf.LlamaConfig(**common, rope_parameters=rope, attention_bias=False, mlp_bias=False)
    if spec.arch == "qwen2":
        return tf.Qwen2Config(**common, rope_parameters=rope, use_sliding_window=False)
    if spec.arch == "qwen3":
        return tf.Qwen3Config(**common, rope_parameters=rope, attention_bias=False, use_sliding_window=False)
    raise ValueError(spec.arch)


def hf_model(spec: TinySpec, W: dict[str, np.ndarray], attn: str = "eager"):
    from transformers import AutoModelForCausalLM

    cfg = hf_config(spec)
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(cfg, attn_implementation=attn, dtype=torch.float32)
    sd = {k: torch.from_numpy(v.copy()) for k, v in W.items()}
    missing, unexpected = model.load_state_dict(sd, strict=False)
    missing = [m for m in missing if not (spec.tied and m == "lm_head.weight")]
    assert not missing and not unexpected, (missing, unexpected)
    if spec.tied:
        assert model.lm_head.weight.data_ptr() == model.model.embed_tokens.weight.data_ptr()
    model.eval()
    return model


def llama_permute(w: np.ndarray, n_head: int) -> np.ndarray:
    """HF (rotate-half) rows -> llama.cpp adjacent-pair rows, as convert_hf_to_gguf.py's permute():
    within each head, rows [0..hd/2) and [hd/2..hd) are interleaved."""
    return w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)


def llama3_rope_factors(spec: TinySpec) -> np.ndarray:
    """rope_freqs.weight as convert_hf_to_gguf.py (LlamaModel.generate_extra_tensors) computes it."""
    s = spec.llama3_scaling
    base, dim = spec.rope_base, spec.head_dim
    freqs = 1.0 / (base ** (torch.arange(0, dim, 2, dtype=torch.float32) / dim))
    factor, lo, hi, old = s["factor"], s["low_freq_factor"], s["high_freq_factor"], s["original_max_position_embeddings"]
    low_freq_wavelen = old / lo
    high_freq_wavelen = old / hi
    out = []
    for f in freqs.tolist():
        wavelen = 2 * math.pi / f
        if wavelen < high_freq_wavelen:
            out.append(1.0)
        elif wavelen > low_freq_wavelen:
            out.append(factor)
        else:
            smooth = (old / wavelen - lo) / (hi - lo)
            out.append(1.0 / ((1 - smooth) / factor + smooth))
    return np.array(out, dtype=np.float32)


def write_gguf(spec: TinySpec, W: dict[str, np.ndarray], path: Path, vocab) -> None:
    """vocab = (tokens, merges) of the tiny BPE; gemma3 gets the SPM-style vocabulary instead."""
    import gguf

    a = spec.arch
    w = gguf.GGUFWriter(str(path), arch=a)
    w.add_name(spec.name)
    w.add_context_length(spec.context_length)
    w.add_embedding_length(spec.d_model)
    w.add_block_count(spec.n_layers)
    w.add_feed_forward_length(spec.d_ff)
    w.add_head_count(spec.n_heads)
    w.add_head_count_kv(spec.n_kv_heads)
    w.add_layer_norm_rms_eps(spec.norm_eps)
    w.add_rope_freq_base(spec.rope_base)
    w.add_file_type(gguf.LlamaFileType.MOSTLY_F16 if spec.wtype == "f16" else gguf.LlamaFileType.ALL_F32)
    if a == "llama":
        w.add_vocab_size(spec.vocab)
        w.add_rope_dimension_count(spec.head_dim)
    if a in ("qwen3", "gemma3") or spec.head_dim * spec.n_heads != spec.d_model:
        w.add_key_length(spec.head_dim)
        w.add_value_length(spec.head_dim)
    if a == "gemma3":
        w.add_sliding_window(spec.sliding_window)
        if spec.linear_scaling:
            w.add_rope_scaling_type(gguf.RopeScalingType.LINEAR)
            w.add_rope_scaling_factor(spec.linear_scaling)
    if a == "gemma3":
        write_spm_vocab(w, vocab[0])
    else:
        write_bpe_vocab(w, *vocab)

    def t(name, arr):
        arr = np.ascontiguousarray(arr)
        if arr.ndim == 2 and spec.wtype == "f16":
            arr = arr.astype(np.float16)
        else:
            arr = arr.astype(np.float32)
        w.add_tensor(name, arr)

    shift = 1.0 if a == "gemma3" else 0.0  # convert_hf_to_gguf: Gemma norms stored as (1 + w)
    t("token_embd.weight", W["model.embed_tokens.weight"])
    if spec.llama3_scaling:
        t("rope_freqs.weight", llama3_rope_factors(spec))
    for i in range(spec.n_layers):
        p, b = f"model.layers.{i}.", f"blk.{i}."
        q, k = W[p + "self_attn.q_proj.weight"], W[p + "self_attn.k_proj.weight"]
        if a == "llama":
            q, k = llama_permute(q, spec.n_heads), llama_permute(k, spec.n_kv_heads)
        t(b + "attn_norm.weight", W[p + "input_layernorm.weight"] + shift)
        t(b + "attn_q.weight", q)
        t(b + "attn_k.weight", k)
        t(b + "attn_v.weight", W[p + "self_attn.v_proj.weight"])
        t(b + "attn_output.weight", W[p + "self_attn.o_proj.weight"])
        if a == "qwen2":
            for x in "qkv":
                t(b + f"attn_{x}.bias", W[p + f"self_attn.{x}_proj.bias"])
        if a in ("qwen3", "gemma3"):
            t(b + "attn_q_norm.weight", W[p + "self_attn.q_norm.weight"] + shift)
            t(b + "attn_k_norm.weight", W[p + "self_attn.k_norm.weight"] + shift)
        if a == "gemma3":
            t(b + "post_attention_norm.weight", W[p + "post_attention_layernorm.weight"] + shift)
            t(b + "ffn_norm.weight", W[p + "pre_feedforward_layernorm.weight"] + shift)
            t(b + "post_ffw_norm.weight", W[p + "post_feedforward_layernorm.weight"] + shift)
        else:
            t(b + "ffn_norm.weight", W[p + "post_attention_layernorm.weight"])
        t(b + "ffn_gate.weight", W[p + "mlp.gate_proj.weight"])
        t(b + "ffn_up.weight", W[p + "mlp.up_proj.weight"])
        t(b + "ffn_down.weight", W[p + "mlp.down_proj.weight"])
    t("output_norm.weight", W["model.norm.weight"] + shift)
    if not spec.tied:
        t("output.weight", W["lm_head.weight"])
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


def check_gguf_roundtrip(spec: TinySpec, W: dict[str, np.ndarray], path: Path) -> str:
    """Independent check of the GGUF layout: transformers' own GGUF importer (which undoes the llama
    Q/K permutation and the Gemma norm shift) must recover the HF weights. Returns a short verdict."""
    from transformers.modeling_gguf_pytorch_utils import load_gguf_checkpoint

    try:
        model = hf_model(spec, W)
        got = load_gguf_checkpoint(str(path), return_tensors=True, model_to_load=model)["tensors"]
    except Exception as e:  # noqa: BLE001 - report, don't fail the generator
        return f"skipped ({type(e).__name__}: {str(e)[:120]})"
    worst, n = 0.0, 0
    for k, v in got.items():
        if k not in W:
            continue
        ref = W[k]
        v = np.asarray(v, dtype=np.float32).reshape(ref.shape)
        worst = max(worst, float(np.abs(v - ref).max()))
        n += 1
    if n == 0:
        return "skipped (no tensors matched)"
    if worst > 1e-6:
        raise AssertionError(f"{spec.name}: transformers' GGUF import differs from the HF weights by {worst}")
    return f"ok ({n} tensors bit-equal after transformers' GGUF import)"


def f32_list(a) -> list[float]:
    """9 significant digits: parsing the text and rounding to float32 gives back the exact value."""
    return [float(f"{x:.9g}") for x in np.asarray(a, dtype=np.float32).ravel().tolist()]
