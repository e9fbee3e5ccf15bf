#!/usr/bin/env python3
"""Build the tiny random-weight BERT fixture under tests/fixtures/bert-tiny.

The model is written in the sentence-transformers directory layout, with
weights in F32, F16 and BF16 and once with HF's `bert.` name prefix. The
expected embeddings come from an explicit PyTorch implementation of the BERT
encoder and of sentence-transformers pooling, run on a padded batch with an
attention mask as Hugging Face runs it. The C tests compare against expected.json, so
they need no PyTorch.

Needs only Debian's python3-torch:  /usr/bin/python3 scripts/embed/make_fixture.py
The output is deterministic for a given torch build (fixed seed).

With --minilm DIR it writes instead one float32 model with the shapes of
all-MiniLM-L6-v2 and random weights into DIR, for bench/embed/run.sh. Its
vocabulary is the special tokens and then the words w5, w6, ..., so a text of
n such words tokenises to exactly n tokens.
"""

import argparse
import collections
import json
import math
import os
import shutil
import struct
import sys

import torch
import torch.nn.functional as F

TYPE_VOCAB = 2
LAYER_NORM_EPS = 1e-12

SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
WORDS = """the a an of to and in is it that for on with as was at by be this from or
have not are but had they his her she he we you all one there were which their said
can so up out if about who get them what when make like time no just him know take
people into year your good some could see other than then now look only come its over
think also back after use two how our work first well way even new want because any
these give day most us cat dog bird fish tree river stone cloud rain snow wind fire
light dark blue green red""".split()
VOCAB = SPECIALS + WORDS
CLS_ID = VOCAB.index("[CLS]")
SEP_ID = VOCAB.index("[SEP]")

# Model shape. weight_std is the spread of the linear weights; the other
# spreads scale with it.
Shape = collections.namedtuple("Shape", "hidden layers heads intermediate max_position "
                               "max_seq_length vocab weight_std")

# The test fixture; its max_seq_length is below max_position so the tests
# see sentence_bert_config.json win.
TINY = Shape(hidden=32, layers=2, heads=4, intermediate=64, max_position=64,
             max_seq_length=48, vocab=VOCAB, weight_std=0.2)
# all-MiniLM-L6-v2's shapes (30522 vocabulary entries), with BERT's initial
# weight spread so the activations stay in the range of a trained model.
MINILM = Shape(hidden=384, layers=6, heads=12, intermediate=1536, max_position=512,
               max_seq_length=256, vocab=SPECIALS + [f"w{i}" for i in range(5, 30522)],
               weight_std=0.02)
HIDDEN = TINY.hidden
MAX_SEQ_LENGTH = TINY.max_seq_length

# Texts of in-vocabulary lowercase words: whitespace split and vocabulary lookup
# give exactly the ids a WordPiece tokenizer gives for them.
TEXTS = [
    "",
    "cat",
    "the dog and the cat",
    "blue river over dark cloud",
    "people think about the new way to work because it is good for all of us",
    " ".join(WORDS[i % len(WORDS)] for i in range(7, 7 + 33)),
    " ".join(WORDS[(3 * i) % len(WORDS)] for i in range(46)),
    # Longer than MAX_SEQ_LENGTH - 2 words: the encoder keeps the first 46.
    " ".join(WORDS[(5 * i + 1) % len(WORDS)] for i in range(60)),
]


def token_ids(text):
    return [VOCAB.index(w) for w in text.split()]


def make_weights(generator, shape=TINY):
    """Return HF BertModel weights (no prefix) with values far enough from 0 and 1
    that a wrong or swapped tensor changes the output."""
    HIDDEN, INTERMEDIATE = shape.hidden, shape.intermediate
    unit = shape.weight_std / 0.2

    def normal(*dims, std=0.2):
        return torch.randn(*dims, generator=generator) * (std * unit)

    def norm_weight():
        return 1.0 + normal(HIDDEN, std=0.1)

    w = {
        "embeddings.word_embeddings.weight": normal(len(shape.vocab), HIDDEN, std=0.5),
        "embeddings.position_embeddings.weight": normal(shape.max_position, HIDDEN, std=0.5),
        "embeddings.token_type_embeddings.weight": normal(TYPE_VOCAB, HIDDEN, std=0.5),
        "embeddings.LayerNorm.weight": norm_weight(),
        "embeddings.LayerNorm.bias": normal(HIDDEN, std=0.1),
    }
    for layer in range(shape.layers):
        p = f"encoder.layer.{layer}."
        for name in ("query", "key", "value"):
            w[p + f"attention.self.{name}.weight"] = normal(HIDDEN, HIDDEN)
            w[p + f"attention.self.{name}.bias"] = normal(HIDDEN, std=0.1)
        w[p + "attention.output.dense.weight"] = normal(HIDDEN, HIDDEN)
        w[p + "attention.output.dense.bias"] = normal(HIDDEN, std=0.1)
        w[p + "attention.output.LayerNorm.weight"] = norm_weight()
        w[p + "attention.output.LayerNorm.bias"] = normal(HIDDEN, std=0.1)
        w[p + "intermediate.dense.weight"] = normal(INTERMEDIATE, HIDDEN)
        w[p + "intermediate.dense.bias"] = normal(INTERMEDIATE, std=0.1)
        w[p + "output.dense.weight"] = normal(HIDDEN, INTERMEDIATE)
        w[p + "output.dense.bias"] = normal(HIDDEN, std=0.1)
        w[p + "output.LayerNorm.weight"] = norm_weight()
        w[p + "output.LayerNorm.bias"] = normal(HIDDEN, std=0.1)
    return w


def encode(w, batch_ids, shape=TINY):
    """Run the BERT encoder on a padded batch; return hidden states and the mask."""
    HIDDEN, HEADS, LAYERS = shape.hidden, shape.heads, shape.layers
    longest = max(len(ids) for ids in batch_ids)
    ids = torch.zeros(len(batch_ids), longest, dtype=torch.long)
    mask = torch.zeros(len(batch_ids), longest)
    for i, row in enumerate(batch_ids):
        ids[i, : len(row)] = torch.tensor(row)
        mask[i, : len(row)] = 1.0

    positions = torch.arange(longest)
    x = (w["embeddings.word_embeddings.weight"][ids]
         + w["embeddings.position_embeddings.weight"][positions][None]
         + w["embeddings.token_type_embeddings.weight"][0][None, None])
    x = F.layer_norm(x, (HIDDEN,), w["embeddings.LayerNorm.weight"],
                     w["embeddings.LayerNorm.bias"], LAYER_NORM_EPS)

    head_dim = HIDDEN // HEADS
    # Hugging Face's additive mask: the float32 minimum on padding keys.
    additive = (1.0 - mask)[:, None, None, :] * torch.finfo(torch.float32).min
    for layer in range(LAYERS):
        p = f"encoder.layer.{layer}."

        def heads(name):
            y = F.linear(x, w[p + f"attention.self.{name}.weight"],
                         w[p + f"attention.self.{name}.bias"])
            return y.view(y.shape[0], y.shape[1], HEADS, head_dim).transpose(1, 2)

        q, k, v = heads("query"), heads("key"), heads("value")
        scores = q @ k.transpose(-1, -2) / math.sqrt(head_dim) + additive
        context = (scores.softmax(dim=-1) @ v).transpose(1, 2).reshape(x.shape)
        attn = F.linear(context, w[p + "attention.output.dense.weight"],
                        w[p + "attention.output.dense.bias"])
        x = F.layer_norm(attn + x, (HIDDEN,), w[p + "attention.output.LayerNorm.weight"],
                         w[p + "attention.output.LayerNorm.bias"], LAYER_NORM_EPS)
        inter = F.gelu(F.linear(x, w[p + "intermediate.dense.weight"],
                                w[p + "intermediate.dense.bias"]))
        out = F.linear(inter, w[p + "output.dense.weight"], w[p + "output.dense.bias"])
        x = F.layer_norm(out + x, (HIDDEN,), w[p + "output.LayerNorm.weight"],
                         w[p + "output.LayerNorm.bias"], LAYER_NORM_EPS)
    return x, mask


def pool(hidden, mask, mode, normalize):
    """sentence-transformers' Pooling module, then its Normalize module."""
    m = mask[..., None]
    if mode == "mean":
        out = (hidden * m).sum(1) / m.sum(1).clamp(min=1e-9)
    elif mode == "cls":
        out = hidden[:, 0]
    elif mode == "max":
        out = hidden.masked_fill(m == 0, -1e9).max(1).values
    else:
        raise ValueError(mode)
    return F.normalize(out, p=2, dim=1) if normalize else out


def write_safetensors(path, tensors, dtype):
    """Write tensors in the safetensors layout: u64 LE header length, JSON header,
    then the raw little-endian data in header order."""
    names = {torch.float32: "F32", torch.float16: "F16", torch.bfloat16: "BF16",
             torch.int64: "I64"}
    header = {"__metadata__": {"format": "pt"}}
    blobs = []
    offset = 0
    for name, t in tensors.items():
        t = t if t.dtype == torch.int64 else t.to(dtype)
        raw = t.contiguous().view(torch.uint8).numpy().tobytes() if t.numel() else b""
        header[name] = {"dtype": names[t.dtype], "shape": list(t.shape),
                        "data_offsets": [offset, offset + len(raw)]}
        blobs.append(raw)
        offset += len(raw)
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)  # keep the data section 8-byte aligned
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for raw in blobs:
            f.write(raw)


def write_json(path, value):
    with open(path, "w") as f:
        json.dump(value, f, indent=2)
        f.write("\n")


def write_model_dir(path, tensors, dtype, shape=TINY):
    HIDDEN, VOCAB, MAX_SEQ_LENGTH = shape.hidden, shape.vocab, shape.max_seq_length
    os.makedirs(os.path.join(path, "1_Pooling"), exist_ok=True)
    write_json(os.path.join(path, "config.json"), {
        "architectures": ["BertModel"],
        "model_type": "bert",
        "hidden_size": HIDDEN,
        "num_hidden_layers": shape.layers,
        "num_attention_heads": shape.heads,
        "intermediate_size": shape.intermediate,
        "hidden_act": "gelu",
        "vocab_size": len(VOCAB),
        "max_position_embeddings": shape.max_position,
        "type_vocab_size": TYPE_VOCAB,
        "layer_norm_eps": LAYER_NORM_EPS,
        "position_embedding_type": "absolute",
        "torch_dtype": {torch.float32: "float32", torch.float16: "float16",
                        torch.bfloat16: "bfloat16"}[dtype],
    })
    write_safetensors(os.path.join(path, "model.safetensors"), tensors, dtype)
    with open(os.path.join(path, "vocab.txt"), "w") as f:
        f.write("\n".join(VOCAB) + "\n")
    write_json(os.path.join(path, "tokenizer_config.json"), {
        "do_lower_case": True,
        "cls_token": "[CLS]", "sep_token": "[SEP]", "pad_token": "[PAD]",
        "unk_token": "[UNK]", "mask_token": "[MASK]",
        "model_max_length": MAX_SEQ_LENGTH,
        "tokenizer_class": "BertTokenizer",
    })
    write_json(os.path.join(path, "sentence_bert_config.json"),
               {"max_seq_length": MAX_SEQ_LENGTH, "do_lower_case": False})
    write_json(os.path.join(path, "modules.json"), [
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "name": "1", "path": "1_Pooling",
         "type": "sentence_transformers.models.Pooling"},
        {"idx": 2, "name": "2", "path": "2_Normalize",
         "type": "sentence_transformers.models.Normalize"},
    ])
    write_json(os.path.join(path, "1_Pooling", "config.json"), {
        "word_embedding_dimension": HIDDEN,
        "pooling_mode_cls_token": False,
        "pooling_mode_mean_tokens": True,
        "pooling_mode_max_tokens": False,
        "pooling_mode_mean_sqrt_len_tokens": False,
    })


def write_minilm(path):
    """Write the benchmark model: MiniLM's shapes, float32, mean pooling, normalised."""
    if os.path.isdir(path):
        shutil.rmtree(path)
    generator = torch.Generator().manual_seed(20261204)
    weights = make_weights(generator, MINILM)
    write_model_dir(path, weights, torch.float32, MINILM)
    return 0


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--minilm", metavar="DIR",
                        help="write the MiniLM-shaped benchmark model into DIR instead; its "
                        "vocabulary has no real words (only w5, w6, ...), so English text "
                        "becomes [UNK] tokens")
    args = parser.parse_args()
    if args.minilm:
        return write_minilm(args.minilm)

    root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..",
                        "tests", "fixtures", "bert-tiny")
    root = os.path.normpath(root)
    if os.path.isdir(root):
        shutil.rmtree(root)
    os.makedirs(root)

    generator = torch.Generator().manual_seed(20240611)
    weights = make_weights(generator)

    inputs = []
    batch = []
    for text in TEXTS:
        ids = token_ids(text)
        kept = ids[: MAX_SEQ_LENGTH - 2]
        inputs.append({"text": text, "ids": ids, "tokens": len(kept) + 2,
                       "truncated": len(kept) < len(ids)})
        batch.append([CLS_ID] + kept + [SEP_ID])

    variants = {}
    with torch.no_grad():
        for name, dtype, prefix in (("f32", torch.float32, ""), ("f16", torch.float16, ""),
                                    ("bf16", torch.bfloat16, ""),
                                    ("prefixed", torch.float32, "bert.")):
            # The reference runs in float32 on the weights as stored, so the
            # rounding to F16 or BF16 is part of the expected values.
            rounded = {k: v.to(dtype).to(torch.float32) for k, v in weights.items()}
            stored = {prefix + k: v for k, v in rounded.items()}
            if prefix:
                # Real checkpoints carry these too; the loader must ignore them.
                stored["bert.embeddings.position_ids"] = torch.arange(TINY.max_position)[None]
                stored["bert.pooler.dense.weight"] = torch.randn(HIDDEN, HIDDEN,
                                                                 generator=generator)
                stored["bert.pooler.dense.bias"] = torch.zeros(HIDDEN)
            write_model_dir(os.path.join(root, name), stored, dtype)
            hidden, mask = encode(rounded, batch)
            variants[name] = {"dir": name, "pooling": "mean", "normalize": True,
                              "embeddings": pool(hidden, mask, "mean", True).tolist()}

        hidden, mask = encode(weights, batch)
        for mode, normalize in (("cls", True), ("max", True), ("mean", False)):
            key = f"{mode}" + ("" if normalize else "_unnormalized")
            variants[key] = {"dir": "f32", "pooling": mode, "normalize": normalize,
                             "embeddings": pool(hidden, mask, mode, normalize).tolist()}

    write_json(os.path.join(root, "expected.json"), {
        "generator": "scripts/embed/make_fixture.py",
        "torch_version": torch.__version__,
        "hidden_size": HIDDEN,
        "max_seq_length": MAX_SEQ_LENGTH,
        "cls_id": CLS_ID,
        "sep_id": SEP_ID,
        "inputs": inputs,
        "variants": variants,
        "note": "Variants whose dir is f32 but whose pooling or normalize differ "
                "from it are built by the tests by rewriting 1_Pooling/config.json "
                "and modules.json in a copy of f32.",
    })
    return 0


if __name__ == "__main__":
    sys.exit(main())
