// The nanochat chat page: a client of /v1/chat/completions that keeps the conversation in the browser.
// Model text is never parsed as HTML: it goes into the page only through textContent / text nodes (see renderMarkdown).
"use strict";
const $ = (sel, root = document) => root.querySelector(sel);
const state = { messages: [], controller: null, model: "nanochat" };

function el(tag, cls, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined) e.textContent = text;
  return e;
}
function button(label, cls, onclick) { const b = el("button", cls, label); b.type = "button"; b.onclick = onclick; return b; }

// A small, safe markdown subset built as DOM nodes: ``` code blocks ```, paragraphs, line breaks, `code`, **bold**, *italic*.
function renderMarkdown(text, into) {
  into.replaceChildren();
  text.split("```").forEach((part, i) => {
    if (i % 2 === 1) {                                   // inside a fence; its first line may name a language
      const nl = part.indexOf("\n");
      const code = nl >= 0 && /^[\w+.-]*$/.test(part.slice(0, nl)) ? part.slice(nl + 1) : part;
      const pre = el("pre"); pre.append(el("code", null, code)); into.append(pre);
    } else {
      for (const para of part.split(/\n{2,}/)) if (para.trim()) { const p = el("p"); inline(para.replace(/^\n+|\n+$/g, ""), p); into.append(p); }
    }
  });
}
function inline(text, into) {
  const re = /(`[^`\n]+`|\*\*[^*\n]+\*\*|\*[^*\s][^*\n]*\*|\n)/g;
  let last = 0, m;
  while ((m = re.exec(text))) {
    if (m.index > last) into.append(document.createTextNode(text.slice(last, m.index)));
    const t = m[0];
    if (t === "\n") into.append(el("br"));
    else if (t[0] === "`") into.append(el("code", null, t.slice(1, -1)));
    else if (t.startsWith("**")) into.append(el("strong", null, t.slice(2, -2)));
    else into.append(el("em", null, t.slice(1, -1)));
    last = re.lastIndex;
  }
  if (last < text.length) into.append(document.createTextNode(text.slice(last)));
}

const busy = () => state.controller !== null;
function setStatus(text) { $("#status").textContent = text || ""; }

function render() {
  const log = $("#log");
  log.replaceChildren(...state.messages.map(messageView));
  log.scrollTop = log.scrollHeight;
  $("#send").disabled = busy();
  $("#stop").hidden = !busy();
}

function messageView(m, i) {
  const div = el("div", `msg ${m.role}`);
  div.dataset.i = i;
  const body = el("div", "body");
  if (m.role === "assistant") renderMarkdown(m.content, body); else body.textContent = m.content;
  div.append(body);
  if (m.note) div.append(el("div", "note", m.note));
  const actions = el("div", "actions");
  if (!busy() && m.role === "user") actions.append(button("Edit", "edit", () => startEdit(i, div)));
  if (!busy() && m.role === "assistant" && i === state.messages.length - 1) actions.append(button("Regenerate", "regenerate", regenerate));
  div.append(actions);
  return div;
}

function startEdit(i, div) {
  const box = el("textarea"); box.value = state.messages[i].content; box.rows = 3;
  const save = button("Save & submit", "save", () => {
    const text = box.value.trim(); if (!text) return;
    state.messages = state.messages.slice(0, i);          // the conversation is cut at the edited message
    state.messages.push({ role: "user", content: text });
    generate();
  });
  const actions = el("div", "actions"); actions.append(save, button("Cancel", "cancel", render));
  div.replaceChildren(box, actions);
  box.focus();
}

function regenerate() {
  if (busy() || state.messages.at(-1)?.role !== "assistant") return;
  state.messages.pop();
  generate();
}

function settings() {
  const num = (id) => { const v = $(`#${id}`).value; return v === "" ? undefined : Number(v); };
  return { temperature: num("temperature"), top_k: num("top_k"), max_tokens: num("max_tokens") };
}

// Stream the reply to the conversation so far: POST with stream=true, read server-sent events, redraw on each read.
async function generate() {
  setStatus("");
  const history = state.messages.map(({ role, content }) => ({ role, content: content || "(no reply)" }));
  const reply = { role: "assistant", content: "" };
  state.messages.push(reply);
  const controller = new AbortController();
  state.controller = controller;
  render();
  const view = $("#log").lastElementChild, body = $(".body", view);
  view.classList.add("streaming");
  try {
    const res = await fetch("/v1/chat/completions", {
      method: "POST", headers: { "Content-Type": "application/json" }, signal: controller.signal,
      body: JSON.stringify({ model: state.model, messages: history, stream: true, ...settings() }),
    });
    if (!res.ok) {
      const err = await res.json().catch(() => null);
      throw new Error(err?.error?.message || `HTTP ${res.status}`);
    }
    const reader = res.body.getReader(), decoder = new TextDecoder();
    let buf = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buf += decoder.decode(value, { stream: true });
      let k;
      while ((k = buf.indexOf("\n\n")) >= 0) {
        const event = buf.slice(0, k); buf = buf.slice(k + 2);
        for (const line of event.split("\n")) {
          if (!line.startsWith("data: ") || line === "data: [DONE]") continue;
          const obj = JSON.parse(line.slice(6));
          if (obj.error) throw new Error(obj.error.message);
          const choice = obj.choices?.[0];
          if (choice?.delta?.content) reply.content += choice.delta.content;
          if (choice?.finish_reason === "length") reply.note = "(the reply reached its length limit)";
        }
      }
      renderMarkdown(reply.content, body);
      $("#log").scrollTop = $("#log").scrollHeight;
    }
  } catch (e) {
    if (e.name === "AbortError") reply.note = "(stopped)";
    else {                                               // refused: give the message back to edit and resend
      state.messages.pop();
      const asked = state.messages.pop();
      if (asked && !$("#input").value) $("#input").value = asked.content;
      setStatus(e.message);
    }
  } finally {
    if (state.controller === controller) state.controller = null;
    render();
  }
}

function send(ev) {
  ev?.preventDefault();
  const input = $("#input"), text = input.value.trim();
  if (!text || busy()) return;
  if (state.messages.at(-1)?.role === "user") state.messages.pop();   // an unanswered message is replaced
  state.messages.push({ role: "user", content: text });
  input.value = "";
  generate();
}

function newChat() {
  state.controller?.abort();
  state.controller = null;
  state.messages = [];
  setStatus("");
  render();
  $("#input").focus();
}

document.addEventListener("DOMContentLoaded", () => {
  $("#composer").addEventListener("submit", send);
  $("#input").addEventListener("keydown", (e) => { if (e.key === "Enter" && !e.shiftKey && !e.isComposing) send(e); });
  $("#stop").onclick = () => state.controller?.abort();
  $("#new").onclick = newChat;
  fetch("/v1/models").then((r) => r.json()).then((d) => {
    state.model = d.data[0].id; $("#model").textContent = state.model;
  }).catch(() => {});
  render();
});
