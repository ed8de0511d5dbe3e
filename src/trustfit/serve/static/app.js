// trustfit web page: predict, show entities or class bars, ask for an explanation.
// User text is only ever inserted with textContent; the explanation snippet comes from the
// server, which escapes every piece of text in it (trustfit/explain/render.py).
"use strict";
const $ = (id) => document.getElementById(id);
let task = null;
let lastText = null;

function headers() {
  const h = { "Content-Type": "application/json" };
  const key = $("key").value.trim();
  if (key) h["X-API-Key"] = key;
  return h;
}

function showError(msg) { $("error").textContent = msg || ""; }

async function call(path, body) {
  const r = await fetch(path, body === undefined ? { headers: headers() }
                                                 : { method: "POST", headers: headers(), body: JSON.stringify(body) });
  const data = await r.json().catch(() => ({}));
  if (!r.ok) {
    const d = data.detail;
    throw new Error(Array.isArray(d) ? d.join("; ") : (d || `HTTP ${r.status}`));
  }
  return data;
}

async function loadModel() {
  try {
    const info = await call("/v1/model");
    task = info.task;
    const types = task === "ner"
      ? [...new Set(info.labels.filter((l) => l !== "O").map((l) => l.slice(2)))].join(", ")
      : info.labels.length + " classes";
    $("model").textContent = (task === "ner" ? "named-entity recognition: " : "text classification: ") + types;
  } catch (e) {
    $("model").textContent = "model information unavailable (" + e.message + ")";
  }
}

function renderNer(res) {
  const box = $("result");
  box.replaceChildren();
  let pos = 0;
  const select = $("entity");
  select.replaceChildren();
  res.entities.forEach((ent, i) => {
    box.append(document.createTextNode(res.text.slice(pos, ent.start)));
    const mark = document.createElement("mark");
    mark.className = "ent";
    mark.dataset.type = ent.type;
    mark.append(document.createTextNode(res.text.slice(ent.start, ent.end)));
    const type = document.createElement("span");
    type.className = "type";
    type.textContent = ent.type + " " + ent.score.toFixed(2);
    mark.append(type);
    box.append(mark);
    pos = ent.end;
    const opt = document.createElement("option");
    opt.value = String(i);
    opt.textContent = ent.text + " (" + ent.type + ")";
    select.append(opt);
  });
  box.append(document.createTextNode(res.text.slice(pos)));
  select.hidden = res.entities.length === 0;
  $("explain").disabled = res.entities.length === 0;
  if (!res.entities.length) showError("no entities found");
}

function renderClassify(res) {
  const box = $("result");
  box.replaceChildren();
  for (const item of res.top_k) {
    const row = document.createElement("div");
    row.className = "bar";
    const name = document.createElement("span");
    name.className = "name";
    name.textContent = item.label;
    const track = document.createElement("div");
    track.className = "track";
    const fill = document.createElement("div");
    fill.className = "fill";
    fill.style.width = (100 * item.score).toFixed(1) + "%";
    track.append(fill);
    const value = document.createElement("span");
    value.className = "value";
    value.textContent = item.score.toFixed(2);
    row.append(name, track, value);
    box.append(row);
  }
  if (res.route) {
    const r = document.createElement("div");
    r.textContent = res.route.action === "answer" ? "reply: " + (res.route.reply || "") : "handed off to a human";
    box.append(r);
  }
  $("explain").disabled = false;
}

async function predict() {
  showError("");
  $("explanation").replaceChildren();
  const text = $("text").value;
  if (!text.trim()) { showError("type some text first"); return; }
  $("predict").disabled = true;
  try {
    const data = await call("/v1/predict", { texts: [text] });
    lastText = text;
    if (task === null) await loadModel();
    (task === "ner" ? renderNer : renderClassify)(data.results[0]);
  } catch (e) {
    showError(e.message);
  } finally {
    $("predict").disabled = false;
  }
}

async function explain() {
  showError("");
  if (lastText === null) return;
  const body = { text: lastText, method: $("method").value };
  if (task === "ner") body.entity = Number($("entity").value || 0);
  $("explain").disabled = true;
  $("explanation").textContent = "explaining…";
  try {
    const data = await call("/v1/explain", body);
    $("explanation").innerHTML = data.html;  // escaped by the server
    if (data.note) showError(data.note);
  } catch (e) {
    $("explanation").replaceChildren();
    showError(e.message);
  } finally {
    $("explain").disabled = false;
  }
}

$("predict").addEventListener("click", predict);
$("explain").addEventListener("click", explain);
$("text").addEventListener("keydown", (e) => { if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) predict(); });
$("key").addEventListener("change", loadModel);
loadModel();
