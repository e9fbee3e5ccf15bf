#!/usr/bin/env python3
"""PyTorch side of the embedding benchmark (bench/embed/run.sh).

Loads the weights that scripts/embed/make_fixture.py --minilm wrote, runs
the same BERT forward pass as the test fixture (make_fixture.encode, which
follows Hugging Face's eager BertModel: separate query, key and value
projections, an additive padding mask, erf GELU), then mean pooling and L2
normalisation. Batching follows sentence-transformers' encode(): sentences
sorted by length, longest first, cut into batches, each padded to its
longest sentence.

Usage: torch_runner.py MODEL_DIR THREADS MIN_SECONDS [--save-mixed FILE.npy] ROW...
ROW and the token ids are defined as in bench_embed.c. Prints
"NAME SENTENCES_PER_SECOND REPEATS" per row, after a line "blas PATH" that
names the BLAS library this process loaded.
"""

import argparse
import json
import os
import struct
import sys
import time

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..",
                                "scripts", "embed"))
import make_fixture  # noqa: E402

MIN_REPEATS = 3
MAX_REPEATS = 50
FIRST_WORD_ID = 5
VOCAB_SIZE = 30522
CLS_ID = 2
SEP_ID = 3


def mixed_length(i):
    return 8 + (i * 53) % 121


def token_id(s, t):
    return FIRST_WORD_ID + (s * 131 + t * 31) % (VOCAB_SIZE - FIRST_WORD_ID)


def load_safetensors(path):
    """Read a float32 safetensors file into a dict of tensors."""
    with open(path, "rb") as f:
        (header_len,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(header_len))
        data = bytearray(f.read())
    tensors = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        if info["dtype"] != "F32":
            raise SystemExit(f"torch_runner: {path}: tensor {name} is {info['dtype']}, "
                             "expected F32; regenerate it with make_fixture.py --minilm")
        start, end = info["data_offsets"]
        t = torch.frombuffer(data, dtype=torch.float32, offset=start, count=(end - start) // 4)
        tensors[name] = t.reshape(info["shape"]).clone()
    return tensors


def loaded_blas():
    """Return the BLAS shared libraries mapped into this process."""
    with open("/proc/self/maps") as f:
        paths = {line.split()[-1] for line in f if "blas" in line.split()[-1]}
    return ",".join(sorted(paths)) or "none"


def embed(weights, sentences, batch_size):
    """sentence-transformers' encode(): sort longest first, batch, pad, pool, unsort."""
    order = sorted(range(len(sentences)), key=lambda i: -len(sentences[i]))
    out = [None] * len(sentences)
    for first in range(0, len(order), batch_size):
        chunk = order[first:first + batch_size]
        hidden, mask = make_fixture.encode(weights, [sentences[i] for i in chunk],
                                           make_fixture.MINILM)
        vectors = make_fixture.pool(hidden, mask, "mean", True)
        for k, i in enumerate(chunk):
            out[i] = vectors[k]
    return torch.stack(out)


def run_row(weights, spec, min_seconds, save_mixed):
    name, batch, count, length = spec.split(":")
    batch, count, length = int(batch), int(count), int(length)
    sentences = []
    for s in range(count):
        total = length or mixed_length(s)
        sentences.append([CLS_ID] + [token_id(s, t) for t in range(total - 2)] + [SEP_ID])

    def once():
        if batch == 1:
            return [embed(weights, [sentence], 1) for sentence in sentences]
        return embed(weights, sentences, batch)

    with torch.inference_mode():
        result = once()
        if save_mixed and length == 0:
            import numpy
            numpy.save(save_mixed, result.numpy())
        best, repeats = 0.0, 0
        deadline = time.monotonic() + min_seconds
        while repeats < MAX_REPEATS and (repeats < MIN_REPEATS or time.monotonic() < deadline):
            start = time.monotonic()
            once()
            best = max(best, count / (time.monotonic() - start))
            repeats += 1
    print(f"{name} {best:.2f} {repeats}", flush=True)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("model_dir")
    parser.add_argument("threads", type=int)
    parser.add_argument("min_seconds", type=float)
    parser.add_argument("--save-mixed", metavar="FILE")
    parser.add_argument("rows", nargs="+")
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    weights = load_safetensors(os.path.join(args.model_dir, "model.safetensors"))
    print(f"blas {loaded_blas()}", flush=True)
    for spec in args.rows:
        run_row(weights, spec, args.min_seconds, args.save_mixed)
    return 0


if __name__ == "__main__":
    sys.exit(main())
