"""The chat web server against the real smoke model of the `chat_run` fixture: the official `openai` client, every limit
(400, never 500), the queue (429), `/health` during a long reply, disconnects, the door (Host, Content-Type), a load
test, the page in headless Chromium, and the real process stopped by SIGINT / SIGTERM. A scripted reply source stands in for the model only where a test needs a reply it can choose (markup
injection) or one that lasts (queue, disconnect)."""
import json, logging, os, signal, socket, subprocess, sys, threading, time
from contextlib import contextmanager
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
import httpx, pytest
from nanochat.chat_web import chat_app, make_app, serving
from nanochat.checkpoint import load_chat_model

HI = [{"role": "user", "content": "Hi there"}]

class Scripted:
    "A stand-in for `Chat`: streams `pieces` with `delay` seconds between them, stopping when `stop` is set."
    def __init__(self, pieces, delay=0.0): self.pieces, self.delay, self.usage = list(pieces), delay, {}
    def stream(self, messages, temperature=None, top_k=None, max_tokens=None, seed=0, stop=None):
        self.usage = dict(prompt_tokens=len(messages), completion_tokens=0)
        for p in self.pieces[:max_tokens]:
            if stop is not None and stop.is_set(): return
            time.sleep(self.delay)
            self.usage["completion_tokens"] += 1
            yield p

class Paced:
    "The real `Chat`, its pieces handed out `delay` seconds apart, so that a person (and a test) can see it stream and stop it."
    def __init__(self, chat, delay): self.chat, self.delay, self.model = chat, delay, chat.model
    @property
    def usage(self): return self.chat.usage
    @usage.setter
    def usage(self, v): self.chat.usage = v
    def stream(self, messages, **kw):
        for p in self.chat.stream(messages, **kw): time.sleep(self.delay); yield p

@pytest.fixture(scope="module")
def smoke(chat_run):
    model, tok, meta = load_chat_model(run_dir=chat_run, stage="sft")
    return model, tok

@pytest.fixture(scope="module")
def url(smoke):
    with serving(chat_app(*smoke, workers=2, name="nanochat-smoke-sft")) as u: yield u

def wait_for(cond, what, timeout=20.0):
    "Poll `cond` until true; fail naming `what` if it never is (a deadline, not a timing assert)."
    end = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > end: pytest.fail(f"gave up waiting for {what}")
        time.sleep(0.02)

def stats(base): return httpx.get(f"{base}/stats").json()

# --- the official client -----------------------------------------------------------------------------------------------

def test_openai_client(url):
    from openai import OpenAI
    client = OpenAI(base_url=f"{url}/v1", api_key="x")
    test_ids = [m.id for m in client.models.list()]
    assert test_ids == ["nanochat-smoke-sft"]
    r = client.chat.completions.create(model="nanochat-smoke-sft", messages=HI, max_tokens=20, seed=7, temperature=0.8)
    text, u = r.choices[0].message.content, r.usage
    assert r.object == "chat.completion" and r.choices[0].message.role == "assistant" and isinstance(text, str)
    assert 0 < u.prompt_tokens and 0 <= u.completion_tokens <= 20 and u.total_tokens == u.prompt_tokens + u.completion_tokens
    assert r.choices[0].finish_reason in ("stop", "length")
    chunks = list(client.chat.completions.create(model="nanochat-smoke-sft", messages=HI, max_tokens=20, seed=7, temperature=0.8,
                                                 stream=True, stream_options={"include_usage": True}))
    assert chunks[0].choices[0].delta.role == "assistant"
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == text   # same seed: same reply, streamed
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == r.choices[0].finish_reason
    assert chunks[-1].choices == [] and chunks[-1].usage.model_dump() == u.model_dump()   # usage counted, in the last chunk
    # what else the client sends: content parts, a system message, top_p, user, stop, max_completion_tokens
    r = client.chat.completions.create(model="m", messages=[{"role": "system", "content": "Be brief."},
                                                            {"role": "user", "content": [{"type": "text", "text": "Hi"}]}],
                                       top_p=0.9, user="u1", stop=["\n"], max_completion_tokens=5, n=1)
    assert r.usage.completion_tokens <= 5 and "\n" not in r.choices[0].message.content

# --- limits: 400 with a message naming the problem -----------------------------------------------------------------------

def msgs(n): return [{"role": ("user", "assistant")[i % 2], "content": f"m{i}"} for i in range(n)]
LIMIT_CASES = {
    "malformed JSON":    (b'{"messages": [', "not valid JSON"),
    "not UTF-8":         (b'{"messages": [{"role": "user", "content": "\xff"}]}', "not valid UTF-8"),
    "not an object":     (b'[1, 2]', "must be a JSON object"),
    "no messages":       (dict(messages=[]), "1 to 500 messages, got 0"),
    "501 messages":      (dict(messages=msgs(501)), "got 501 messages"),
    "role tool":         (dict(messages=[{"role": "tool", "content": "x"}]), "role must be one of system, user, assistant"),
    "last not user":     (dict(messages=msgs(2)), "last message must be from the user"),
    "roles out of order":(dict(messages=[{"role": "user", "content": "a"}, {"role": "user", "content": "b"}]), "alternate"),
    "empty content":     (dict(messages=[{"role": "user", "content": " "}]), "empty content"),
    "8,001 characters":  (dict(messages=[{"role": "user", "content": "x" * 8001}]), "8,001 characters; at most 8,000"),
    "32,001 in total":   (dict(messages=[{"role": ("user", "assistant")[i % 2], "content": "x" * (8000 if i < 4 else 1)} for i in range(5)]),
                          "32,001 characters in total"),
    "lone surrogate":    (b'{"messages": [{"role": "user", "content": "hi \\ud800"}]}', "not valid Unicode"),
    "image part":        (dict(messages=[{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}]), "text part"),
    "temperature 2.5":   (dict(messages=HI, temperature=2.5), "temperature must be a number from 0 to 2, got 2.5"),
    "temperature -0.1":  (dict(messages=HI, temperature=-0.1), "temperature must be"),
    "temperature text":  (dict(messages=HI, temperature="hot"), "temperature must be"),
    "top_k 201":         (dict(messages=HI, top_k=201), "top_k must be an integer from 0 to 200"),
    "max_tokens 0":      (dict(messages=HI, max_tokens=0), "max_tokens must be an integer from 1 to 4096, got 0"),
    "max_tokens 4097":   (dict(messages=HI, max_tokens=4097), "got 4097"),
    "max_completion 5k": (dict(messages=HI, max_completion_tokens=5000), "max_completion_tokens must be"),
    "n 2":               (dict(messages=HI, n=2), "n must be 1"),
    "too long for context": (dict(messages=[{"role": "user", "content": "word " * 400}]), "model's context of 64 tokens"),
}

@pytest.mark.parametrize("case", LIMIT_CASES)
def test_limits(url, case):
    body, expected = LIMIT_CASES[case]
    r = httpx.post(f"{url}/v1/chat/completions", content=body if isinstance(body, bytes) else json.dumps(body),
                   headers={"Content-Type": "application/json"})
    assert r.status_code == 400, r.text
    err = r.json()["error"]
    assert set(err) == {"message", "type", "param", "code"} and err["type"] == "invalid_request_error"
    assert expected in err["message"], err

def test_other_routes(url):
    assert httpx.get(f"{url}/health").json()["status"] == "ok"
    r = httpx.get(f"{url}/nope"); assert r.status_code == 404 and "error" in r.json()
    r = httpx.get(f"{url}/v1/chat/completions"); assert r.status_code == 405 and "error" in r.json()
    page = httpx.get(f"{url}/")
    assert page.status_code == 200 and "default-src 'self'" in page.headers["content-security-policy"]
    for asset in ("/static/chat.js", "/static/chat.css"): assert httpx.get(url + asset).status_code == 200
    assert "http" not in page.text.replace("http-equiv", "")   # no CDN: every asset is ours

# --- the queue, /health during a reply, disconnects ---------------------------------------------------------------------

def slow_app(workers=1, queue=1): return make_app([Scripted(["tick "] * 4000, delay=0.01) for _ in range(workers)], queue=queue)

def test_queue_full_answers_429():
    with serving(slow_app(workers=1, queue=1)) as base, httpx.Client(base_url=base, timeout=30) as c1, \
         httpx.Client(base_url=base, timeout=30) as c2:
        body = dict(messages=HI, stream=True, max_tokens=4000)
        with c1.stream("POST", "/v1/chat/completions", json=body) as a:
            assert a.status_code == 200
            wait_for(lambda: stats(base)["busy"] == 1, "the first reply to start")
            got = {}
            waiter = threading.Thread(target=lambda: got.update(r=c2.post("/v1/chat/completions", json=dict(messages=HI, max_tokens=3))))
            waiter.start()
            wait_for(lambda: stats(base)["queued"] == 1, "the second request to queue")
            r = httpx.post(f"{base}/v1/chat/completions", json=dict(messages=HI))
            assert r.status_code == 429 and r.json()["error"]["code"] == "rate_limit_exceeded"
            assert int(r.headers["retry-after"]) >= 1                       # when to try again, in seconds
            assert "1 requests already wait" in r.json()["error"]["message"]
        waiter.join(30)   # the first stream closed: its worker moves on to the queued request
        assert got["r"].status_code == 200 and got["r"].json()["choices"][0]["message"]["content"] == "tick tick tick "
        s = stats(base)
        assert (s["rejected"], s["abandoned"], s["served"]) == (1, 1, 1)

def test_a_burst_never_queues_past_the_limit():
    "20 requests at once, before any worker has taken its first job (the workers not started yet): 2 run, 8 wait, 10 are refused."
    import asyncio
    from nanochat.chat_web import Reply, Workers
    loop = asyncio.new_event_loop()
    w = Workers([Scripted(["x "]) for _ in range(2)], limit=8)
    jobs = [Reply(loop, HI, 0, 0, 1, 0) for _ in range(20)]
    assert [w.submit(j) for j in jobs] == [True] * 10 + [False] * 10
    s = w.snapshot()
    assert (s["busy"], s["free"], s["queued"], s["queue_limit"]) == (2, 0, 8, 8), s
    w.start()
    wait_for(lambda: w.snapshot()["queued"] == 0 and w.snapshot()["busy"] == 0, "the ten accepted jobs to run")
    assert w.snapshot()["tokens_generated"] == 10
    w.close(); loop.close()

def test_health_during_reply_and_disconnect_frees_worker():
    with serving(slow_app(workers=1, queue=1)) as base, httpx.Client(base_url=base, timeout=30) as c:
        with c.stream("POST", "/v1/chat/completions", json=dict(messages=HI, stream=True, max_tokens=4000)) as s:
            lines = s.iter_lines()
            assert sum(1 for _, line in zip(range(12), lines) if "tick" in line) >= 3     # it streams
            h = httpx.get(f"{base}/health", timeout=5)                                     # the event loop is free
            assert h.status_code == 200
            assert stats(base)["busy"] == 1
        # the client left with ~4,000 ticks to go: the worker is freed, not left generating for 40 s
        wait_for(lambda: stats(base)["busy"] == 0, "the abandoned stream's worker to be freed", timeout=10)
        s = stats(base)
        assert s["abandoned"] == 1 and s["tokens_generated"] < 4000

def test_client_leaving_mid_upload_is_abandoned_not_an_error():
    import socket
    with serving(slow_app()) as base:
        host, port = base.split("//")[1].split(":")
        # a huge declared body is refused at once, before any of it is read
        with socket.create_connection((host, int(port))) as sk:
            sk.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                       b"Content-Length: 999999999999\r\n\r\n{}")
            sk.settimeout(10); reply = b""
            while b"body_too_large" not in reply and (chunk := sk.recv(4096)): reply += chunk   # headers, then the body
        assert reply.startswith(b"HTTP/1.1 400") and b"body_too_large" in reply, reply
        # a client that declares a plausible body, sends part of it and leaves: counted as abandoned, not as an error
        with socket.create_connection((host, int(port))) as sk:
            sk.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                       b"Content-Length: 5000\r\n\r\n{\"messages\": ")
            time.sleep(0.3)
        wait_for(lambda: stats(base)["abandoned"] == 1, "the half-uploaded request to be counted as abandoned", timeout=15)
        assert stats(base)["errors"] == 0


def test_queued_stream_abandoned_before_it_starts_is_not_served(caplog):
    "A stream that waited in the queue and whose client left before it started: abandoned (and logged 499), not served."
    caplog.set_level(logging.INFO, logger="nanochat.chat_web")
    with serving(slow_app(workers=1, queue=1)) as base, httpx.Client(base_url=base, timeout=30) as c:
        host, port = base.split("//")[1].split(":")
        with c.stream("POST", "/v1/chat/completions", json=dict(messages=HI, stream=True, max_tokens=4000)) as a:
            wait_for(lambda: stats(base)["busy"] == 1, "the first reply to start")
            body = json.dumps(dict(messages=HI, stream=True, max_tokens=3)).encode()
            with socket.create_connection((host, int(port))) as sk:   # the second stream waits, then its client leaves
                sk.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                           b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
                wait_for(lambda: stats(base)["queued"] == 1, "the second stream to queue")
            wait_for(lambda: stats(base)["abandoned"] == 1, "the queued stream to be counted as abandoned")
        wait_for(lambda: stats(base)["busy"] == 0 and stats(base)["queued"] == 0, "the worker to pass over the abandoned job")
        wait_for(lambda: len([r for r in caplog.records if "/v1/chat/completions" in r.getMessage()]) == 2, "both requests' log lines")
        s = stats(base)
        statuses = [r.getMessage().split()[3] for r in caplog.records if "/v1/chat/completions" in r.getMessage()]
        # the first stream had started (200) when its client left; the second never did: 499, "client closed request"
        assert (s["served"], s["abandoned"], statuses) == (0, 2, ["200", "499"]), (s, statuses)

# --- the door: Host (DNS rebinding) and Content-Type (cross-site forms) ----------------------------------------------------

def test_host_header_must_name_this_server():
    "A page on evil.example that rebinds its name to 127.0.0.1 still sends `Host: evil.example`: refused, 403."
    with serving(slow_app()) as base:
        port = base.rsplit(":", 1)[1]
        for host in ("127.0.0.1", f"127.0.0.1:{port}", f"localhost:{port}", "LOCALHOST", "[::1]:8000",
                     "localhost.", f"localhost.:{port}"):   # a trailing dot: the same name, written absolute
            r = httpx.get(f"{base}/health", headers={"Host": host})
            assert r.status_code == 200, (host, r.text)
        for host in (f"evil.example:{port}", "127.0.0.1.nip.io", "localhost.evil.example", "[::2]", "", "localhost..", "evil.example."):
            r = httpx.get(f"{base}/", headers={"Host": host})
            assert r.status_code == 403, (host, r.text)
            err = r.json()["error"]
            assert set(err) == {"message", "type", "param", "code"} and err["code"] == "host_not_allowed"
            assert repr(host) in err["message"] and "--allow-host" in err["message"], err
        r = httpx.post(f"{base}/v1/chat/completions", json=dict(messages=HI), headers={"Host": "evil.example"})
        assert r.status_code == 403 and stats(base)["requests"] == 0   # refused before it reaches the model

def test_allowed_hosts():
    from nanochat.chat_web import allowed_hosts
    assert allowed_hosts("127.0.0.1") == {"127.0.0.1", "localhost", "[::1]"}
    assert allowed_hosts("localhost", ["Chat.Example"]) == {"127.0.0.1", "localhost", "[::1]", "chat.example"}
    assert allowed_hosts("localhost", ["chat.example."]) == {"127.0.0.1", "localhost", "[::1]", "chat.example"}   # absolute
    lan = allowed_hosts("0.0.0.0", ["chat.example"])
    assert {"127.0.0.1", "localhost", "[::1]", "chat.example", socket.gethostname().lower()} <= lan, lan
    assert "[fe80::1]" in allowed_hosts("fe80::1") and "192.0.2.7" in allowed_hosts("192.0.2.7")   # the address it is bound to
    with pytest.raises(ValueError, match="--allow-host 'a b'"): allowed_hosts("127.0.0.1", ["a b"])

def test_api_takes_only_json():
    "A cross-site form or `fetch` may POST text/plain without asking (no CORS preflight): it must not make the model write."
    with serving(slow_app()) as base:
        body = json.dumps(dict(messages=HI, max_tokens=3))
        for ctype in ("text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x", None):
            r = httpx.post(f"{base}/v1/chat/completions", content=body, headers={"Content-Type": ctype} if ctype else {})
            assert r.status_code == 415, (ctype, r.text)
            err = r.json()["error"]
            assert err["code"] == "unsupported_media_type" and "application/json" in err["message"] and repr(ctype or "") in err["message"]
        assert stats(base)["requests"] == 0 and stats(base)["tokens_generated"] == 0
        r = httpx.post(f"{base}/v1/chat/completions", content=body, headers={"Content-Type": "Application/JSON; charset=utf-8"})
        assert r.status_code == 200 and r.json()["choices"][0]["message"]["content"] == "tick tick tick "

# --- the real process: signals, the start-up warning -----------------------------------------------------------------------

# The real `python -m nanochat.chat_web` on the trained smoke model, its replies made to last (the smoke model's own end
# after a few tokens): a tick every 20 ms until stopped.
LASTING = """import sys, time
import nanochat.chat_web as w
class Lasting(w.Chat):
    def stream(self, messages, stop=None, **kw):
        self.usage = dict(prompt_tokens=1, completion_tokens=0)
        while not stop.is_set():
            time.sleep(0.02); self.usage["completion_tokens"] += 1; yield "tick "
w.Chat = Lasting
sys.exit(w.main(sys.argv[1:]))
"""

@contextmanager
def server_process(run_dir, tmp_path, *args):
    "Start the server in a process; yields (process, base URL, a function returning its stderr so far)."
    with socket.socket() as s: s.bind(("127.0.0.1", 0)); port = s.getsockname()[1]
    err = tmp_path/"stderr.txt"
    with open(err, "w") as f:
        p = subprocess.Popen([sys.executable, "-c", LASTING, "--run-dir", str(run_dir), "--device", "cpu", "--port", str(port), *args],
                             stderr=f, stdout=subprocess.DEVNULL, env=os.environ | dict(PYTHONUNBUFFERED="1"))
    base = f"http://127.0.0.1:{port}"
    def up():
        try: return httpx.get(f"{base}/health", timeout=1).status_code == 200
        except httpx.TransportError: return False
    try:
        wait_for(lambda: p.poll() is not None or up(), "the server to start", timeout=120)
        assert p.poll() is None, err.read_text()
        yield p, base, err.read_text
    finally:
        if p.poll() is None: p.kill(); p.wait()

def stream_into(base, out: list, stream=True):
    "POST a reply that lasts; append its status, then its non-empty lines (streamed) or its JSON, then how it ended."
    try:
        with httpx.Client(timeout=30) as c, c.stream("POST", f"{base}/v1/chat/completions",
                                                       json=dict(messages=HI, stream=stream, max_tokens=4000)) as r:
            out.append(r.status_code)
            if stream: out.extend(line for line in r.iter_lines() if line)
            else: out.append(json.loads(r.read()))
        out.append("closed")
    except httpx.HTTPError as e: out.append(repr(e))

def start_replies(base, n_streams, n_plain=0):
    "1 running and `n_streams - 1 + n_plain` queued replies, and a half-sent request; returns (threads, outputs, socket)."
    outs = [[] for _ in range(n_streams + n_plain)]
    threads = [threading.Thread(target=stream_into, args=(base, o, i < n_streams)) for i, o in enumerate(outs)]
    threads[0].start()
    wait_for(lambda: stats(base)["busy"] == 1, "the first reply to run")
    for t in threads[1:]: t.start()
    wait_for(lambda: stats(base)["queued"] == len(outs) - 1, "the others to queue")
    half = socket.create_connection(("127.0.0.1", int(base.rsplit(":", 1)[1])))
    half.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                 b"Content-Length: 5000\r\n\r\n{\"messages\": ")
    wait_for(lambda: stats(base)["requests"] == len(outs) + 1, "the half-sent request to arrive")
    return threads, outs, half

def exits_within(p, seconds, what):
    try: return p.wait(timeout=seconds)
    except subprocess.TimeoutExpired: pytest.fail(f"the server was still running {seconds} s after {what}")

@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_signal_ends_every_reply_and_exits(chat_run, tmp_path, sig):
    with server_process(chat_run, tmp_path, "--workers", "1", "--queue", "8") as (p, base, stderr):
        threads, outs, half = start_replies(base, n_streams=6, n_plain=2)
        p.send_signal(sig)
        rc = exits_within(p, 3, f"{sig.name} with 1 running, 7 queued and a half-sent request")
        for t in threads: t.join(10)
        half.settimeout(5); answer = half.recv(4096); half.close()
    assert answer.startswith(b"HTTP/1.1 503") and b"server_shutting_down" in answer, answer   # told, not cut off
    assert rc == 0, rc   # a shutdown asked for and done
    err = stderr()
    assert "Traceback" not in err, err
    for i, out in enumerate(outs[:6]):   # every stream, running or queued: an error event saying why, then [DONE], then the end
        assert out[0] == 200 and out[-2:] == ["data: [DONE]", "closed"], (i, out[-4:])
        last = json.loads(out[-3][6:])["error"]
        assert last["code"] == "server_shutting_down" and "shutting down" in last["message"], (i, last)
    assert any("tick" in line for line in outs[0][1:]), outs[0][:3]   # the running one had streamed
    for out in outs[6:]:                 # the waiting non-streamed requests: 503 in OpenAI's shape
        assert out[0] == 503 and out[1]["error"]["code"] == "server_shutting_down" and out[2] == "closed", out

def test_serving_ends_open_streams_when_it_stops(caplog):
    "Leaving `serving` with a stream open: the stream is told and ends, the threads are gone, nothing is cancelled mid-flight."
    out, before = [], set(threading.enumerate())   # other tests' servers may be running
    with serving(slow_app()) as base:
        t = threading.Thread(target=stream_into, args=(base, out)); t.start()
        wait_for(lambda: stats(base)["busy"] == 1, "the stream to start")
    t.join(10)
    assert out[-3:-1] == ['data: {"error": {"message": "the server is shutting down: this reply was ended before it was done; '
                          'try again once it is back", "type": "server_error", "param": null, "code": "server_shutting_down"}}',
                          "data: [DONE]"] and out[-1] == "closed", out[-3:]
    assert not [th.name for th in set(threading.enumerate()) - before if th.name.startswith(("uvicorn", "chat-worker"))]
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR], caplog.text


def test_second_signal_quits_at_once(chat_run, tmp_path):
    with server_process(chat_run, tmp_path, "--workers", "1", "--queue", "8") as (p, base, stderr):
        threads, outs, half = start_replies(base, n_streams=4)
        p.send_signal(signal.SIGINT); time.sleep(0.05); p.send_signal(signal.SIGINT)
        rc = exits_within(p, 3, "a second SIGINT")
        for t in threads: t.join(10)
        half.close()
    err = stderr()
    assert rc == 128 + signal.SIGINT and "quitting at once" in err and "Traceback" not in err, (rc, err)

def free_port():
    with socket.socket() as s: s.bind(("127.0.0.1", 0)); return s.getsockname()[1]

@pytest.mark.parametrize("delay", [0.3, 1.0, 2.0])
def test_ctrl_c_while_starting_is_one_line(chat_run, delay):
    "Ctrl-C at any moment of start-up (importing torch, loading the model, starting to serve): no traceback, exit 130."
    p = subprocess.Popen([sys.executable, "-m", "nanochat.chat_web", "--run-dir", str(chat_run), "--device", "cpu",
                          "--port", str(free_port())], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    time.sleep(delay); p.send_signal(signal.SIGINT)
    try: err = p.communicate(timeout=30)[1]
    except subprocess.TimeoutExpired: p.kill(); pytest.fail(f"still running 30 s after a SIGINT at {delay} s: {p.communicate()[1]}")
    assert "Traceback" not in err and p.returncode in (130, 0), (p.returncode, err)   # 0: it was serving, and shut down
    if p.returncode == 130: assert err.splitlines()[-1] == "interrupted: quitting", err

@pytest.mark.parametrize("how", ["busy port", "unknown host"])
def test_cannot_listen_is_one_line_before_any_banner(chat_run, how):
    "A port in use or a --host that does not resolve: one line naming the address and what to do, never the banner first."
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0)); busy.listen(); port = busy.getsockname()[1]
        host = "127.0.0.1" if how == "busy port" else "nope.invalid"
        p = subprocess.run([sys.executable, "-m", "nanochat.chat_web", "--run-dir", str(chat_run), "--device", "cpu",
                            "--host", host, "--port", str(port)], capture_output=True, text=True, timeout=120)
    lines = p.stderr.strip().splitlines()
    assert p.returncode in (1, 2) and len(lines) == 1 and "Traceback" not in p.stderr, (p.returncode, p.stderr)
    if how == "busy port":
        assert lines[0] == f"error: cannot listen on 127.0.0.1:{port}: address already in use (another server? choose --port)"
    else: assert lines[0].startswith(f"error: cannot listen on nope.invalid:{port}: ") and "--host" in lines[0], lines

def test_serving_beyond_loopback_warns_and_opens_the_door_to_named_hosts(chat_run, tmp_path):
    with server_process(chat_run, tmp_path, "--host", "0.0.0.0", "--allow-host", "chat.example.test") as (p, base, stderr):
        err = stderr()
        assert "warning" in err and "0.0.0.0" in err and "chat.example.test" in err and "localhost" in err, err
        port = base.rsplit(":", 1)[1]
        for host, status in [(f"chat.example.test:{port}", 200), (socket.gethostname(), 200), ("evil.example", 403)]:
            assert httpx.get(f"{base}/health", headers={"Host": host}).status_code == status, host
        p.send_signal(signal.SIGTERM)
        exits_within(p, 3, "SIGTERM")


# --- a load test ---------------------------------------------------------------------------------------------------------

def test_load(smoke):
    "200 requests from 8 concurrent clients: valid (streamed or not), invalid, oversized, malformed, abandoned streams."
    model, tok = smoke
    from nanochat.chat import Chat
    app = make_app([Paced(Chat(model, tok), 0.003) for _ in range(2)], queue=8)
    kinds = ["valid", "stream", "abandon", "invalid", "oversized", "malformed", "abandon", "context"]
    def one(i, c):
        kind = kinds[i % len(kinds)]
        if kind == "malformed":
            return kind, c.post("/v1/chat/completions", content=b'{"messages": [{"role": "us', headers={"Content-Type": "application/json"}).status_code
        body = dict(messages=[{"role": "user", "content": f"Hello number {i}"}], seed=i)
        if kind == "invalid": body["temperature"] = 9
        if kind == "oversized": body["messages"][0]["content"] = "z" * 9000
        if kind == "context": body["messages"][0]["content"] = "many words " * 200
        if kind in ("stream", "abandon"):
            with c.stream("POST", "/v1/chat/completions", json=body | dict(stream=True)) as r:
                for line in r.iter_lines():
                    if kind == "abandon" and '"content"' in line: break   # leave after the first chunk
                return kind, r.status_code
        return kind, c.post("/v1/chat/completions", json=body).status_code
    def client(k):
        with httpx.Client(base_url=base, timeout=60) as c: return [one(i, c) for i in range(k, 200, 8)]
    with serving(app) as base:
        with ThreadPoolExecutor(8) as pool: results = [r for rs in pool.map(client, range(8)) for r in rs]
        assert len(results) == 200 and not [r for r in results if r[1] >= 500]
        for kind, code in results:
            assert code == (400 if kind in ("invalid", "oversized", "malformed", "context") else 200), (kind, code)
        wait_for(lambda: stats(base)["busy"] == 0 and stats(base)["queued"] == 0, "every worker to be free")
        s = stats(base)
        ok = sum(code == 200 for _, code in results)
        assert s["served"] + s["abandoned"] == ok and s["abandoned"] >= 1 and s["errors"] == 0, s
        assert s["invalid"] == 100 and s["requests"] == 200
        assert httpx.get(f"{base}/health").status_code == 200                  # still up and answering
        r = httpx.post(f"{base}/v1/chat/completions", json=dict(messages=HI, max_tokens=4))
        assert r.status_code == 200 and r.json()["usage"]["completion_tokens"] <= 4

# --- the page in headless Chromium ---------------------------------------------------------------------------------------

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
        "--disable-component-update", "--disable-sync"]

@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    from playwright.sync_api import sync_playwright
    assert Path(CHROMIUM).exists(), f"{CHROMIUM} is missing: apt-get install chromium (see .ci/run)"
    with sync_playwright() as p:
        ctx = p.chromium.launch_persistent_context(str(tmp_path_factory.mktemp("chromium-profile")), executable_path=CHROMIUM,
                                                   args=ARGS, headless=True, viewport=dict(width=900, height=620))
        yield ctx
        ctx.close()

# Records every distinct text the newest reply shows while it streams.
WATCH = """() => { window.seen = []; new MutationObserver(() => {
  const b = [...document.querySelectorAll('.msg.assistant .body')].at(-1);
  const t = b ? b.textContent : ''; if (t && t !== window.seen.at(-1)) window.seen.push(t);
}).observe(document.querySelector('#log'), {subtree: true, childList: true, characterData: true}); }"""
IDLE = "() => !document.querySelector('#send').disabled"

def texts(page, sel): return page.locator(sel).all_inner_texts()

def test_page_streams_edits_regenerates_stops(smoke, browser, screenshot_dir):
    model, tok = smoke
    from nanochat.chat import Chat
    greedy = Chat(model, tok, temperature=0)
    # greedy (temperature 0) replies are known answers; the smoke model's are short, so pace them to watch them stream
    (m1, r1), (m2, r2), (m3, r3) = [(m, greedy.reply([{"role": "user", "content": m}])) for m in ("Hi there", "How are you?", "Tell me a story")]
    assert greedy.usage["completion_tokens"] >= 3, (r3, greedy.usage)   # enough pieces to press Stop in the middle
    app = make_app([Paced(Chat(model, tok), 0.25)], name="nanochat-smoke-sft")
    with serving(app) as base:
        page = browser.new_page()
        page.on("dialog", lambda d: pytest.fail(f"a dialog opened: {d.message}"))
        page.goto(base)
        page.wait_for_function("() => document.querySelector('#model').textContent !== ''")
        page.click("#settings summary"); page.fill("#temperature", "0"); page.click("#settings summary")
        page.evaluate(WATCH)
        page.fill("#input", m1); page.press("#input", "Enter")
        page.wait_for_selector("#stop:not([hidden])")
        page.wait_for_function(IDLE)
        seen = page.evaluate("window.seen")
        assert len(seen) >= 2 and all(r1.startswith(s.strip()) for s in seen[:-1]), seen   # streamed: growing prefixes
        assert texts(page, ".msg .body") == [m1, r1.strip()]
        # regenerate: a new request, the same greedy reply in the same place
        with page.expect_response("**/v1/chat/completions"): page.click(".msg.assistant .regenerate")
        page.wait_for_function(IDLE)
        assert texts(page, ".msg .body") == [m1, r1.strip()]
        # edit the question: the conversation is cut there and answered again
        page.click(".msg.user .edit"); page.fill(".msg.user textarea", m2); page.click(".msg.user .save")
        page.wait_for_function(IDLE)
        assert texts(page, ".msg .body") == [m2, r2.strip()]
        # a follow-up, then stop it after its first words
        page.fill("#input", m3); page.press("#input", "Enter")
        page.wait_for_function("() => ([...document.querySelectorAll('.msg.assistant .body')].at(-1)?.textContent || '') !== ''"
                               " && document.querySelectorAll('.msg').length === 4")
        page.click("#stop")
        page.wait_for_function(IDLE)
        partial = texts(page, ".msg.assistant .body")[-1]
        assert page.locator(".msg.assistant .note").last.inner_text() == "(stopped)"
        assert len(partial) < len(r3.strip()), (partial, r3)
        wait_for(lambda: stats(base)["busy"] == 0, "the stopped reply's worker to be freed")
        assert stats(base)["abandoned"] == 1
        page.screenshot(path=str(screenshot_dir/"chat_web.png"))   # the README's picture (see conftest.screenshot_dir)
        page.click("#new")
        assert page.locator(".msg").count() == 0
        page.close()

def test_page_shows_markup_as_text(browser):
    evil = ["Look: <script>alert(1)</script> ", "and <img src=x onerror=\"window.pwned=1\"> ", "**bold** `code`"]
    with serving(make_app([Scripted(evil)], name="scripted")) as base:
        page = browser.new_page()
        page.on("dialog", lambda d: pytest.fail(f"a dialog opened: {d.message}"))
        page.goto(base)
        page.fill("#input", "say something nasty"); page.press("#input", "Enter")
        page.wait_for_function("() => document.querySelectorAll('.msg.assistant').length === 1 && !document.querySelector('#send').disabled")
        body = page.locator(".msg.assistant .body")
        assert body.inner_text() == "Look: <script>alert(1)</script> and <img src=x onerror=\"window.pwned=1\"> bold code"
        assert body.locator("script, img").count() == 0 and page.locator("img").count() == 0
        assert body.locator("strong").inner_text() == "bold" and body.locator("code").inner_text() == "code"   # the safe subset
        assert page.evaluate("window.pwned") is None
        page.close()

# --- the command line ----------------------------------------------------------------------------------------------------

def test_cli_missing_model(tmp_path, capsys):
    from nanochat.chat_web import main
    assert main(["--run-dir", str(tmp_path/"nothing"), "--port", "0"]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("error: ") and "04_sft" in err, err
    with pytest.raises(SystemExit): main(["--temperature", "3"])
    assert "--temperature must be from 0 to 2, got 3.0" in capsys.readouterr().err
    with pytest.raises(SystemExit): main(["--allow-host", "chat.example:8000"])   # before any model is loaded
    assert "--allow-host 'chat.example:8000' is not a host name or address" in capsys.readouterr().err
