"The real download code against the served offline mirror: shards, resume, integrity, clear errors."
import time
import pytest
import pyarrow.parquet as pq
from nanochat import dataset as ds

def test_shards_download_and_iterate(mirror, base):
    paths = ds.download_shards(1)
    assert [p.name for p in paths] == ["shard_00000.parquet", "shard_01822.parquet"]   # training, then the pinned validation
    assert all(pq.ParquetFile(p).metadata.num_rows > 0 for p in paths)
    assert not list(ds.data_dir().glob("*.tmp")) and not list(ds.data_dir().glob(".*"))
    assert ds.split_shards("train") == paths[:1] and ds.split_shards("val") == paths[1:]
    # a batch is a row group; iteration can restart exactly at a recorded position
    it = ds.iter_batches("train")
    first, pos0 = next(it); second, pos1 = next(it)
    assert pos0 == (0, 0) and pos1 == (0, 1) and len(first) == 1000
    again, pos = next(ds.iter_batches("train", start=pos1))
    assert pos == pos1 and again == second

def test_resume_partial_set(mirror, base, mirror_dir):
    ds.download_shards(2)
    (ds.data_dir()/"shard_00001.parquet").unlink()
    mtime = (ds.data_dir()/"shard_00000.parquet").stat().st_mtime_ns
    ds.download_shards(3)   # fetches only what is missing
    assert (ds.data_dir()/"shard_00000.parquet").stat().st_mtime_ns == mtime
    assert sorted(p.name for p in ds.list_shards()) == [f"shard_0000{i}.parquet" for i in range(3)] + ["shard_01822.parquet"]
    assert ds.split_shards("val") == [ds.data_dir()/"shard_01822.parquet"] and len(ds.split_shards("train")) == 3

def test_truncated_file_never_survives(tmp_path, base, mirror_dir):
    # a mirror whose shard is cut short: the parquet footer check fails, and nothing is left behind as if complete
    host = tmp_path/"m"/"huggingface.co"/"datasets"/ds.FINEWEB_REPO/"resolve"/"main"
    host.mkdir(parents=True)
    src = (mirror_dir/"huggingface.co"/"datasets"/ds.FINEWEB_REPO/"resolve"/"main"/"shard_00000.parquet").read_bytes()
    (host/"shard_00000.parquet").write_bytes(src[: len(src) // 2])
    with ds.use_mirror(tmp_path/"m"):
        with pytest.raises(ds.DownloadError, match="shard_00000"):
            ds.download(ds.hf_dataset_url(ds.FINEWEB_REPO, "shard_00000.parquet"), ds.data_dir()/"shard_00000.parquet",
                        retries=1, verify=ds.check_parquet, quiet=True)
    assert list(ds.data_dir().iterdir()) == []

def test_unreachable_host_says_how_to_use_a_mirror(base, monkeypatch):
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")   # nothing listens on the discard port
    t = time.time()
    with pytest.raises(ds.DownloadError) as e:
        ds.download(ds.hf_dataset_url(ds.FINEWEB_REPO, "shard_00000.parquet"), base/"x.parquet", retries=1, quiet=True)
    assert time.time() - t < 10
    assert "127.0.0.1:9" in str(e.value) and "NANOCHAT_MIRROR" in str(e.value) and "HF_ENDPOINT" in str(e.value)

def test_bad_num_shards(base):
    with pytest.raises(ValueError, match="num_shards .* got 0"): ds.download_shards(0)
    with pytest.raises(ValueError, match="num_shards .* got 1823"): ds.download_shards(1823)


def test_damaged_shard_on_disk_is_fetched_again(mirror, base):
    "A shard copied by hand and cut short is checked before it is trusted, and downloaded again."
    ds.download_shards(1)
    p = ds.data_dir()/"shard_00000.parquet"
    good = p.read_bytes()
    p.write_bytes(good[: len(good) // 3])
    ds.download_shards(1)
    assert p.read_bytes() == good


def test_damaged_shard_offline_names_the_file(base, monkeypatch, mirror_dir):
    p = ds.data_dir()/"shard_00000.parquet"
    src = mirror_dir/"huggingface.co"/"datasets"/ds.FINEWEB_REPO/"resolve"/"main"/"shard_00000.parquet"
    p.write_bytes(src.read_bytes()[:5000])
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")   # offline
    with pytest.raises(ds.DownloadError, match=r"shard_00000\.parquet was damaged .* Could not download"):
        ds.download(ds.hf_dataset_url(ds.FINEWEB_REPO, p.name), p, retries=1, verify=ds.check_parquet, quiet=True)


def test_reading_a_damaged_shard_names_it(tmp_path):
    bad = tmp_path/"shard_00000.parquet"
    bad.write_bytes(b"PAR1 this is not parquet")
    with pytest.raises(ValueError, match=r"shard_00000\.parquet is damaged .*delete it"):
        next(ds.iter_batches(shards=[bad]))


def test_server_that_compresses(tmp_path, base):
    "A server answering with Content-Encoding: gzip (asked or not): the file is stored decompressed and complete."
    import gzip, http.server, threading
    body = b"".join(b"line %d of a text file\n" % i for i in range(20_000))
    packed = gzip.compress(body)
    class Gzipping(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200); self.send_header("Content-Encoding", "gzip")
            self.send_header("Content-Length", str(len(packed))); self.end_headers(); self.wfile.write(packed)
        def log_message(self, *a): pass
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Gzipping)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        out = ds.download(f"http://127.0.0.1:{srv.server_port}/f.txt", tmp_path/"f.txt", retries=1, quiet=True)
        assert out.read_bytes() == body
    finally: srv.shutdown()
