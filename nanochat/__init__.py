"""nanochat, the course: build a small ChatGPT end to end in literate notebooks

Modules:

- `nanochat.core_eval`: The DCLM CORE metric as nanochat computes it: 22 few-shot tasks, each scored by the model's own losses, each accuracy centred on its random-guess baseline, averaged.
- `nanochat.course`: Presets from `settings.ini`, checked before anything runs; papermill executing the chapters in order, resuming where a run stopped; metrics, figures and `report.md`.
- `nanochat.dataset`: Remote URLs with one overridable base, robust downloads, an offline mirror, and FineWeb-Edu parquet shards read row group by row group.
- `nanochat.model`: Token embedding, rotary positions, QK-norm, parameter-free RMSNorm, ReLU² MLP, no biases, an untied head with a logit softcap, grouped-query attention and a KV cache — with `depth` as the single dial.
- `nanochat.pretrain`: Muon and AdamW, a warmup / constant / warmdown schedule, a streaming loader that packs documents into rows, bits per byte, checkpoints that resume exactly, and the same loop on one CPU or eight GPUs.
- `nanochat.tokenizer`: Byte-level BPE built from scratch in Python, the same algorithm in Rust for real data, nanochat's split pattern and special tokens, conversations rendered with a training mask, and compression measured against rustbpe and HuggingFace `tokenizers`."""

__version__ = "0.1.0"
