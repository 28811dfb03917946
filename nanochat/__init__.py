"""nanochat, the course: build a small ChatGPT end to end in literate notebooks

Modules:

- `nanochat.course`: Presets from `settings.ini`, checked before anything runs; papermill executing the chapters in order, resuming where a run stopped; metrics, figures and `report.md`.
- `nanochat.dataset`: Remote URLs with one overridable base, robust downloads, an offline mirror, and FineWeb-Edu parquet shards read row group by row group."""

__version__ = "0.1.0"
