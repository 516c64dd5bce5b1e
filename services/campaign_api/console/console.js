// Outbound console: a thin client of the public API, with the same API keys.
"use strict";
const $ = (sel) => document.querySelector(sel);
const state = { key: localStorage.getItem("outbound.key") || "", timer: null, lead: null };

async function api(method, path, body) {
  const res = await fetch(path, {
    method,
    headers: { Authorization: `Bearer ${state.key}`, "Content-Type": "application/json" },
    body: body ? JSON.stringify(body) : undefined,
  });
  const data = res.headers.get("content-type")?.includes("json") ? await res.json() : null;
  if (!res.ok) throw new Error((data && (data.detail || data.title)) || `HTTP ${res.status}`);
  return data;
}

function showError(err) {
  const el = $("#error");
  el.hidden = !err;
  el.textContent = err ? String(err.message || err) : "";
}

function cell(row, text) {
  const td = document.createElement("td");
  td.textContent = text ?? "—";
  row.appendChild(td);
  return td;
}

const pct = (x) => `${Math.round((x || 0) * 1000) / 10}%`;

async function renderList() {
  $("#list-view").hidden = false;
  $("#campaign-view").hidden = true;
  const page = await api("GET", "/v1/campaigns?limit=100");
  const body = $("#campaigns tbody");
  body.replaceChildren();
  for (const c of page.data) {
    const tr = document.createElement("tr");
    tr.dataset.id = c.id;
    [c.name, c.status, c.total_contacts, c.calls_made, c.calls_connected,
     new Date(c.created_at).toLocaleString()].forEach((v) => cell(tr, v));
    tr.addEventListener("click", () => { location.hash = `#/campaigns/${c.id}`; });
    body.appendChild(tr);
  }
}

function drawTrend(points) {
  const svg = $("#trend");
  svg.replaceChildren();
  if (!points.length) return;
  const max = Math.max(...points.map((p) => p.value), 0.0001);
  const step = points.length > 1 ? 300 / (points.length - 1) : 300;
  const coords = points.map((p, i) => `${i * step},${100 - (p.value / max) * 90}`);
  const line = document.createElementNS("http://www.w3.org/2000/svg", "polyline");
  line.setAttribute("points", points.length > 1 ? coords.join(" ") : `0,${coords[0].split(",")[1]} 300,${coords[0].split(",")[1]}`);
  line.setAttribute("fill", "none");
  line.setAttribute("stroke", "#3056d3");
  line.setAttribute("stroke-width", "2");
  svg.appendChild(line);
}

function trendPoints(c) {
  // The last 30 days: cost (minutes x the workspace's per-minute rate), or minutes if no rate.
  const m = c.metrics || {};
  const rate = m.per_minute_rate || 0;
  if (Array.isArray(m.daily)) return m.daily.map((d) => ({ value: rate ? d.minutes * rate : d.minutes }));
  return [{ value: m.cost || 0 }];
}

async function renderHistory(campaignId, leadId) {
  state.lead = leadId;
  $("#h-history").hidden = false;
  const box = $("#history");
  box.replaceChildren();
  let lead;
  try {
    lead = await api("GET", `/v1/campaigns/${campaignId}/leads/${leadId}`);
  } catch (err) {
    box.textContent = `No call history: ${err.message}`;
    return;
  }
  for (const call of lead.calls || []) {
    const div = document.createElement("div");
    div.className = "call";
    const head = document.createElement("div");
    head.textContent = `#${call.attempt} ${call.status ?? ""} ${call.disposition ?? ""} · ` +
      `${Math.round(call.duration_seconds || 0)} s · ${call.started_at ?? ""}`;
    div.appendChild(head);
    if (call.recording_url) {
      const a = document.createElement("a");
      a.href = call.recording_url;
      a.textContent = "recording";
      div.appendChild(a);
    }
    const pre = document.createElement("pre");
    pre.textContent = (call.transcript || []).map((t) => `${t.role}: ${t.text}`).join("\n");
    div.appendChild(pre);
    box.appendChild(div);
  }
  if (!box.children.length) box.textContent = "No calls yet.";
}

async function renderCampaign(id) {
  $("#list-view").hidden = true;
  $("#campaign-view").hidden = false;
  const [c, leads] = await Promise.all([
    api("GET", `/v1/campaigns/${id}`),
    api("GET", `/v1/campaigns/${id}/leads?limit=500`),
  ]);
  $("#c-name").textContent = c.name;
  const status = $("#c-status");
  status.textContent = c.status;
  status.className = `status ${c.status}`;
  $("#c-reason").textContent = c.status_reason ? `(${c.status_reason})` : "";
  const d = c.disposition_summary || {};
  $("#k-made").textContent = c.calls_made;
  $("#k-reached").textContent = c.calls_connected;
  $("#k-interested").textContent = d.interested || 0;
  $("#k-optout").textContent = d.opt_out || 0;
  $("#k-connect").textContent = pct(c.metrics?.connect_rate);
  const conversion = c.metrics?.conversion_rate ??
    (c.calls_connected ? (d.interested || 0) / c.calls_connected : 0);
  $("#k-conversion").textContent = pct(conversion);
  $("#cost-total").textContent = (c.metrics?.cost ?? 0).toFixed(2);
  $("#cost-minutes").textContent = (c.metrics?.call_minutes ?? 0).toFixed(1);
  drawTrend(trendPoints(c));
  const list = $("#dispositions");
  list.replaceChildren(...Object.entries(d).sort().map(([k, v]) => {
    const li = document.createElement("li");
    li.textContent = `${k}: ${v}`;
    return li;
  }));
  for (const b of document.querySelectorAll(".actions button")) {
    const allowed = { start: ["scheduled"], pause: ["running", "scheduled"],
                      resume: ["paused"], stop: ["scheduled", "running", "paused"] };
    b.disabled = !allowed[b.dataset.action].includes(c.status);
  }
  $("#l-count").textContent = `(${leads.total})`;
  const body = $("#leads tbody");
  body.replaceChildren();
  for (const l of leads.data) {
    const tr = document.createElement("tr");
    tr.dataset.id = l.id;
    [l.name, l.status, l.last_disposition, l.current_phone, l.pass, l.attempts]
      .forEach((v) => cell(tr, v));
    tr.addEventListener("click", () => renderHistory(id, l.id));
    body.appendChild(tr);
  }
}

async function route() {
  clearInterval(state.timer);
  showError(null);
  if (!state.key) { showError("Enter an API key."); return; }
  const m = location.hash.match(/^#\/campaigns\/([\w-]+)/);
  const render = m ? () => renderCampaign(m[1]) : renderList;
  try { await render(); } catch (err) { showError(err); }
  state.timer = setInterval(() => render().catch(showError), 1500);
}

$("#login").addEventListener("submit", (e) => {
  e.preventDefault();
  state.key = $("#key").value.trim();
  localStorage.setItem("outbound.key", state.key);
  $("#key").value = "";
  route();
});
$("#home").addEventListener("click", (e) => { e.preventDefault(); location.hash = ""; route(); });
for (const b of document.querySelectorAll(".actions button")) {
  b.addEventListener("click", async () => {
    const m = location.hash.match(/^#\/campaigns\/([\w-]+)/);
    if (!m) return;
    if (b.dataset.action === "stop" && !confirm("Stop is irreversible. Stop the campaign?")) return;
    try { await api("PATCH", `/v1/campaigns/${m[1]}`, { action: b.dataset.action }); route(); }
    catch (err) { showError(err); }
  });
}
window.addEventListener("hashchange", route);
route();
