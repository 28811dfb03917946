"""nanochat, the course: build a small ChatGPT end to end in literate notebooks

Modules:

- `nanochat.chat`: The inference engine explained and measured, and three ways to talk to the model: a chat cell in this notebook, a terminal, and a web page with an OpenAI-compatible API.
- `nanochat.chat_cli`: `python -m nanochat.chat_cli -p "Tell me a joke"` prints one answer; without `-p`, a conversation that keeps its history, streams every reply, and survives whatever the user types.
- `nanochat.chat_eval`: ARC-Easy, ARC-Challenge and MMLU scored categorically, GSM8K, HumanEval and SpellingBee by generating an answer, and ChatCORE: each accuracy centred on its chance level, then averaged.
- `nanochat.chat_web`: `python -m nanochat.chat_web` serves the model you trained at http://127.0.0.1:8000: a chat page that streams replies, and the `/v1/chat/completions` API that every OpenAI client already speaks.
- `nanochat.chat_widget`: `chat_widget(preset="quickstart")` in any notebook: a text box, Send (or Enter), replies streamed token by token, Stop, Clear, temperature and top-k sliders, and a choice of the run's models.
- `nanochat.checkpoint`: Atomic, few, and complete enough to resume a run step for step; `load_model` for every later chapter; one name for each stage's checkpoint folder.
- `nanochat.core_eval`: The DCLM CORE metric as nanochat computes it: 22 few-shot tasks, each scored by the model's own losses, each accuracy centred on its random-guess baseline, averaged.
- `nanochat.course`: papermill executing the chapters in order, resuming where a run stopped, then `report.md`; the `nanochat-course` command.
- `nanochat.dataloader`: Parquet shards streamed row group by row group, tokenized in a background thread, packed into BOS-aligned rows, sharded by rank, and resumable to the exact batch.
- `nanochat.dataset`: Remote URLs with one overridable base, robust downloads, an offline mirror, and FineWeb-Edu parquet shards read row group by row group.
- `nanochat.engine`: Turn a GPT into something that writes: prefill the prompt once, decode a batch of rows one token at a time from a preallocated KV cache, sample with temperature and top-k, and let the model call a (safe) calculator.
- `nanochat.execution`: `execute_code(code)` runs a Python program in a fresh, locked-down process and says whether it passed, failed or ran out of time — with every limit enforced by the kernel, not by the program's good manners.
- `nanochat.loss_eval`: A loss that compares models with different tokenizers, summed across ranks, and the fixed evaluation batches it is measured on.
- `nanochat.midtrain`: The chat format, special tokens, multiple choice, calculator use and who the model is — taught by training the base model on a mixture of conversations, with the loss on the assistant's words only.
- `nanochat.model`: Token embedding, rotary positions, QK-norm, parameter-free RMSNorm, ReLU² MLP, no biases, an untied head with a logit softcap, grouped-query attention and a KV cache — with `depth` as the single dial.
- `nanochat.optim`: Newton–Schulz orthogonalisation, the Muon optimizer (shared across ranks under `torchrun`), nanochat's AdamW groups and learning rates, and the warmup / constant / warmdown schedule. Chapter 02 tells the story and runs the demos.
- `nanochat.outputs`: The outputs of a real course run copied into the committed chapter notebooks, so that a chapter read on GitHub or on the docs site shows its plots, samples and numbers; a record of where they came from, and a check that they still belong to the code.
- `nanochat.pretrain`: Muon and AdamW, a warmup / constant / warmdown schedule, a streaming loader that packs documents into rows, bits per byte, checkpoints that resume exactly, and the same loop on one CPU or eight GPUs.
- `nanochat.report`: Metrics and figures saved by each chapter, and the `report.md` assembled from them: what ran where, the BASE / MID / SFT table, wall time per chapter, and each chapter's numbers and figures.
- `nanochat.settings`: Presets from `settings.ini`, every key declared once with its type, range and the chapters that read it, and checked before anything runs.
- `nanochat.sft`: A short, gentle pass over a curated mixture — the midtrained model's last training — with the loss on assistant tokens only, then the chat evaluations before and after.
- `nanochat.tasks`: Every chat dataset of the course as a *task*: a sliceable list of conversations in chapter 00's format, with the rule that says whether a model's answer is right.
- `nanochat.tokenizer`: Byte-level BPE built from scratch in Python, the same algorithm in Rust for real data, nanochat's split pattern and special tokens, conversations rendered with a training mask, and compression measured against rustbpe and HuggingFace `tokenizers`.
- `nanochat.train_loop`: One loop for pretraining, midtraining and SFT: gradient accumulation, the schedule, evaluation, samples, exact checkpoints and resume, a time budget, and `torchrun` — with the data, its loss mask, the schedule, the starting model and the output folder as its arguments."""

__version__ = "0.1.0"
