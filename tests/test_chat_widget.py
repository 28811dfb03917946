"""The chat cell in a real JupyterLab and a real (headless) Chromium: chapter 05 is opened, its cells are run up to the
widget, a message is typed, the reply is seen growing token by token (updates sent from the generation thread reach
the browser: the ipykernel pin in pyproject.toml), Stop is pressed, and the widget answers again. Saves a screenshot to
`screenshot_dir` (docs/images/chat_widget.png with NANOCHAT_SCREENSHOTS=docs/images). Also the widget's logic in-process against the fixture's model."""
import os, secrets, shutil, signal, socket, subprocess, sys, time
from pathlib import Path
import requests
from nanochat.chat_widget import chat_widget

REPO = Path(__file__).resolve().parents[1]
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync"]

def test_widget_logic(chat_run):
    "Send, stream, stage swap and clear on the fixture's real model, without a browser."
    w = chat_widget(run_dir=chat_run, max_tokens=16)
    assert list(w.stage.options) == ["base", "mid", "sft"] and w.stage.value == "sft"
    w.send("hi"); w.thread.join(60)
    assert [m["role"] for m in w.messages] == ["user", "assistant"] and "tokens/s" in w.status.value, w.status.value
    w.stage.value = "base"   # swaps the model, keeps the conversation
    assert "the base model" in w.status.value and len(w.messages) == 2
    w.send("more"); w.thread.join(60)
    assert len(w.messages) == 4
    w.clear()
    assert w.messages == [] and "new conversation" in w.status.value

def _free_port() -> int:
    with socket.socket() as s: s.bind(("127.0.0.1", 0)); return s.getsockname()[1]

def _wait_http(url: str, proc, timeout: float = 60):
    t0 = time.time()
    while time.time() - t0 < timeout:
        assert proc.poll() is None, "JupyterLab exited at start"
        try:
            if requests.get(url, timeout=2).status_code == 200: return
        except requests.RequestException: pass
        time.sleep(0.3)
    raise AssertionError(f"JupyterLab did not answer {url} within {timeout} s")

RUN_TO_WIDGET = """async () => {
  const app = window.jupyterapp;
  while (!app.shell.currentWidget || !app.shell.currentWidget.sessionContext) await new Promise(r => setTimeout(r, 200));
  const panel = app.shell.currentWidget;
  await panel.context.ready; await panel.sessionContext.ready;
  while (!panel.sessionContext.session || !panel.sessionContext.session.kernel) await new Promise(r => setTimeout(r, 200));
  const cells = panel.content.widgets;
  const i = cells.findIndex(c => c.model.type === 'code' && c.model.sharedModel.getSource().includes('chat_widget(preset'));
  panel.content.activeCellIndex = i;
  await app.commands.execute('notebook:run-all-above');
  panel.content.activeCellIndex = i;
  await app.commands.execute('notebook:run-cell');
  return i;
}"""

KERNEL_EXEC = """async (code) => {
  const k = window.jupyterapp.shell.currentWidget.sessionContext.session.kernel;
  const f = k.requestExecute({code}); let err = null;
  f.onIOPub = m => { if (m.header.msg_type === 'error') err = m.content.ename + ': ' + m.content.evalue; };
  await f.done; return err;
}"""

# records the length of the reply being written each time the browser renders an update of the log
OBSERVE = """() => {
  window.__lens = [];
  const box = document.querySelector('.nanochat-log-box');
  new MutationObserver(() => { const live = box.querySelector('.nanochat-live');
    if (live) window.__lens.push(live.textContent.length); }).observe(box, {subtree: true, childList: true, characterData: true});
}"""

def test_widget_in_jupyterlab(chat_run, tmp_path, screenshot_dir, chrome_path):
    from playwright.sync_api import sync_playwright
    root = tmp_path/"lab"; root.mkdir()
    shutil.copy(REPO/"nbs"/"05_chat.ipynb", root/"05_chat.ipynb")
    port, token = _free_port(), secrets.token_hex(16)
    env = {**os.environ, "NANOCHAT_BASE_DIR": str(chat_run.parent.parent), "JUPYTER_RUNTIME_DIR": str(tmp_path/"runtime"),
           "JUPYTERLAB_WORKSPACES_DIR": str(tmp_path/"workspaces"), "JUPYTER_CONFIG_DIR": str(tmp_path/"config")}
    log = open(tmp_path/"lab.log", "w")
    lab = subprocess.Popen([sys.executable, "-m", "jupyterlab", "--no-browser", "--allow-root", "--ip=127.0.0.1",
                            f"--port={port}", f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={root}",
                            "--LabApp.expose_app_in_browser=True", "--LabApp.news_url=None",
                            "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate"],
                           env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        _wait_http(f"http://127.0.0.1:{port}/api/status?token={token}", lab)
        with sync_playwright() as pw:
            ctx = pw.chromium.launch_persistent_context(str(tmp_path/"profile"), executable_path=chrome_path, headless=True,
                                                        args=FLAGS, viewport={"width": 1200, "height": 900})
            try:
                page = ctx.new_page()
                page.goto(f"http://127.0.0.1:{port}/lab/tree/05_chat.ipynb?token={token}")
                page.wait_for_function("() => window.jupyterapp && window.jupyterapp.shell.currentWidget", timeout=60_000)
                page.evaluate(RUN_TO_WIDGET)
                box = page.locator(".nanochat-input input")
                box.wait_for(timeout=60_000)
                # a forward hook makes the real model write ~10 tokens/s, as a bigger model would, so a human
                # (and this test) can watch the reply grow and press Stop in time
                err = page.evaluate(KERNEL_EXEC, "import time\n_delay = [0.1]\n"
                                    "w.chat.model.register_forward_pre_hook(lambda m, a: time.sleep(_delay[0]))\n"
                                    "w.temperature.value = 1.0")
                assert err is None, err
                page.evaluate(OBSERVE)
                status = page.locator(".nanochat-status")
                # 1. a message sent with Enter streams back: the browser renders the reply at several lengths
                for attempt in range(3):
                    n_replies = page.locator(".nanochat-assistant").count()
                    page.evaluate("() => { window.__lens = []; }")
                    box.fill(f"Tell me a joke {attempt}"); box.press("Enter")
                    page.wait_for_function(f"() => document.querySelectorAll('.nanochat-assistant:not(.nanochat-live)').length > {n_replies}",
                                           timeout=60_000)
                    lens = page.evaluate("() => window.__lens")
                    if len(set(l for l in lens if l > 0)) >= 3: break
                grown = sorted(set(l for l in lens if l > 0))
                assert len(grown) >= 3, f"the reply did not stream: lengths seen {lens}"
                page.wait_for_function("() => document.querySelector('.nanochat-status').textContent.includes('tokens/s')", timeout=30_000)
                # 2. Stop during a reply (slower now) stops it; the controls come back
                page.evaluate(KERNEL_EXEC, "_delay[0] = 0.3")
                for attempt in range(3):
                    page.evaluate("() => { window.__lens = []; }")
                    box.fill(f"Tell me a long story {attempt}"); page.locator(".nanochat-send").click()
                    page.wait_for_function("() => window.__lens.some(l => l > 0)", timeout=30_000)
                    page.locator(".nanochat-stop").click(force=True)
                    page.wait_for_function("() => !document.querySelector('.nanochat-live') && "
                                           "document.querySelector('.nanochat-status').textContent.includes('tokens/s')", timeout=30_000)
                    if "stopped" in status.inner_text(): break
                assert "stopped" in status.inner_text(), status.inner_text()
                assert page.locator(".nanochat-send").is_enabled() and page.locator(".nanochat-stop").is_disabled()
                # 3. still responsive: a slider moves, and the next message gets a reply
                page.evaluate(KERNEL_EXEC, "_delay[0] = 0.0")
                n_replies = page.locator(".nanochat-assistant").count()
                box.fill("thanks"); box.press("Enter")
                page.wait_for_function("() => { const t = document.querySelector('.nanochat-status').textContent; "
                                       "return !t.includes(\"stopped\") && (t.includes(\"tokens/s\") || t.includes(\"error\")); }", timeout=60_000)
                assert "error" not in status.inner_text(), status.inner_text()
                assert page.locator(".nanochat-assistant").count() > n_replies, (n_replies, page.locator(".nanochat-log-box").inner_text())
                page.add_style_tag(content=".Toastify { display: none !important; }")   # JupyterLab's news prompt, not ours
                page.locator(".nanochat-chat").screenshot(path=str(screenshot_dir/"chat_widget.png"))
            finally: ctx.close()
    finally:
        os.killpg(lab.pid, signal.SIGTERM)   # the server shuts its kernels down on SIGTERM
        try: lab.wait(20)
        except subprocess.TimeoutExpired: os.killpg(lab.pid, signal.SIGKILL); lab.wait(10)
        log.close()
    assert (screenshot_dir/"chat_widget.png").stat().st_size > 5000
