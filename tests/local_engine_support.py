"""A real local LLM engine for the remote flavor's end-to-end test: llama-cpp-python's
OpenAI-compatible server, loaded with a tiny llama model written here at test time.

No weights are downloaded. ``write_tiny_llama`` writes a GGUF file (llama.cpp's format,
through the ``gguf`` package) of a two-layer llama with random weights and a byte-level
vocabulary (``<0x00>``..``<0xFF>`` plus ``<unk>``, ``<s>``, ``</s>``), so llama.cpp
tokenizes any text and can spell any JSON. Its text is nonsense; the server's grammar-
constrained sampling (``response_format`` with a JSON Schema) makes it valid JSON of the
schema's shape all the same.

The grammar alone is not enough for a model with no training: llama-cpp-python's schema
grammar does not enforce ``minimum``/``maximum`` (a confidence of 7 is grammatical), and
lets a number run to some fifty digits, past a small ``max_tokens``. So one hidden
dimension is constant in every token's embedding and the output layer reads it as a fixed
preference: end of text first, then ``}`` and ``,``, then the digits ``0`` and ``1``.
Greedy decoding therefore closes each number after one digit (a confidence of 0 or 1) and
stops when the object is complete, while the random part of the weights picks among
everything else (which enum label, optional spaces).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import numpy as np

from tests.support import free_port

MODEL_ALIAS = "tiny-llama"
BYTES = 256
FIRST_BYTE = 3  # token ids: 0 <unk>, 1 <s>, 2 </s>, then one token per byte
EOS = 2
# The output layer's fixed preference (in logits) for a few tokens; the rest have none.
PREFERENCE = {EOS: 30.0, FIRST_BYTE + ord("}"): 25.0, FIRST_BYTE + ord(","): 24.0}
PREFERENCE |= {FIRST_BYTE + ord("0"): 20.0, FIRST_BYTE + ord("1"): 20.0}


def write_tiny_llama(
    path: Path,
    *,
    seed: int = 0,
    n_embd: int = 64,
    n_layer: int = 2,
    n_head: int = 4,
    n_ff: int = 128,
    n_ctx: int = 2048,
) -> Path:
    """Write a tiny random llama model as GGUF at ``path`` (about half a megabyte)."""
    import gguf  # a test dependency (the dev extra), as is the engine itself

    rng = np.random.default_rng(seed)
    n_vocab = FIRST_BYTE + BYTES

    def normal(*shape: int, std: float) -> np.ndarray:
        return (rng.standard_normal(shape) * std).astype(np.float32)

    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_name("plinth-tiny-random-llama")
    writer.add_context_length(n_ctx)
    writer.add_embedding_length(n_embd)
    writer.add_block_count(n_layer)
    writer.add_feed_forward_length(n_ff)
    writer.add_head_count(n_head)
    writer.add_head_count_kv(n_head)
    writer.add_rope_dimension_count(n_embd // n_head)
    writer.add_layer_norm_rms_eps(1e-5)
    writer.add_vocab_size(n_vocab)
    writer.add_file_type(gguf.LlamaFileType.ALL_F32)

    # A SentencePiece-style vocabulary of bytes only: every text falls back to bytes.
    writer.add_tokenizer_model("llama")
    tokens = ["<unk>", "<s>", "</s>"] + [f"<0x{b:02X}>" for b in range(BYTES)]
    types = [gguf.TokenType.UNKNOWN, gguf.TokenType.CONTROL, gguf.TokenType.CONTROL]
    types += [gguf.TokenType.BYTE] * BYTES
    writer.add_token_list(tokens)
    writer.add_token_scores([0.0] * n_vocab)
    writer.add_token_types(types)
    writer.add_unk_token_id(0)
    writer.add_bos_token_id(1)
    writer.add_eos_token_id(EOS)
    writer.add_add_bos_token(True)
    writer.add_add_space_prefix(False)

    # Dimension 0 is constant in every embedding: the output layer's fixed preference.
    embeddings = normal(n_vocab, n_embd, std=0.1)
    embeddings[:, 0] = 1.0
    writer.add_tensor("token_embd.weight", embeddings)
    for i in range(n_layer):
        block = f"blk.{i}"
        writer.add_tensor(f"{block}.attn_norm.weight", np.ones(n_embd, np.float32))
        for name in ("attn_q", "attn_k", "attn_v", "attn_output"):
            writer.add_tensor(f"{block}.{name}.weight", normal(n_embd, n_embd, std=0.1))
        writer.add_tensor(f"{block}.ffn_norm.weight", np.ones(n_embd, np.float32))
        writer.add_tensor(f"{block}.ffn_gate.weight", normal(n_ff, n_embd, std=0.1))
        writer.add_tensor(f"{block}.ffn_up.weight", normal(n_ff, n_embd, std=0.1))
        writer.add_tensor(f"{block}.ffn_down.weight", normal(n_embd, n_ff, std=0.02))
    writer.add_tensor("output_norm.weight", np.ones(n_embd, np.float32))
    output = normal(n_vocab, n_embd, std=0.2)
    output[:, 0] = 0.0
    for token, logit in PREFERENCE.items():
        # After the RMS norm, dimension 0 is about sqrt(n_embd / (1 + n_embd * 0.01)).
        output[token, 0] = logit / np.sqrt(n_embd / (1 + (n_embd - 1) * 0.01))
    writer.add_tensor("output.weight", output)

    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


class LocalEngine:
    """llama-cpp-python's OpenAI-compatible server on a loopback port, as a subprocess."""

    def __init__(self, model: Path, log: Path, *, api_key: str) -> None:
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}/v1"
        self.log = open(log, "wb")  # noqa: SIM115
        self.process = subprocess.Popen(
            [
                sys.executable, "-m", "llama_cpp.server",
                "--model", str(model), "--model_alias", MODEL_ALIAS,
                "--host", "127.0.0.1", "--port", str(self.port),
                "--api_key", api_key,
                "--chat_format", "chatml", "--n_ctx", "2048",
                "--n_threads", "1", "--n_threads_batch", "1",
                "--interrupt_requests", "False",  # Plinth may send rows concurrently
            ],
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env={**os.environ, "OMP_NUM_THREADS": "1"},
        )  # fmt: skip
        headers = {"authorization": f"Bearer {api_key}"}
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                self.log.close()
                raise AssertionError(log.read_text(errors="replace"))
            try:
                if httpx.get(f"{self.base_url}/models", headers=headers, timeout=1).is_success:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        self.stop()
        raise AssertionError("llama-cpp-python's server did not start:\n" + log.read_text())

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        self.log.close()
