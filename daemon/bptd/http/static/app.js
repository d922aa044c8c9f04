// bptd station page: status from /api/status, live telemetry from /api/events (server-sent
// events), plots on a canvas, controls through the REST API (HTTP Basic credentials).
"use strict";

const WINDOW_S = 300; // seconds shown in the plots
const MAX_EVENTS = 100;
const STRIPS = [
  { key: 1, label: "P", unit: "kW", scale: 1e-3, color: "#1f5fbf" },
  { key: 2, label: "V", unit: "V", scale: 1, color: "#b35c00" },
  { key: 3, label: "I", unit: "A", scale: 1, color: "#2e9d5b" },
];
const DCDC_STATES = ["off", "standby", "running", "fault"];

const page = { connectors: {}, modules: [], history: {}, dirty: new Set(), credentials: null };

function $(sel, root = document) { return root.querySelector(sel); }

function fmt(value, digits = 1, unit = "") {
  if (value === null || value === undefined || Number.isNaN(value)) return "-";
  return `${Number(value).toFixed(digits)}${unit ? " " + unit : ""}`;
}

function kw(w) { return w === null || w === undefined ? "-" : fmt(w / 1000, 2, "kW"); }

function b64(text) {
  const bytes = new TextEncoder().encode(text);
  let bin = "";
  for (const b of bytes) bin += String.fromCharCode(b);
  return btoa(bin);
}

// ------------------------------------------------------------------ API
async function api(method, path, body) {
  const headers = { "X-Requested-With": "bptd-page" };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (page.credentials) headers.Authorization = "Basic " + page.credentials;
  const res = await fetch(path, {
    method, headers, body: body === undefined ? undefined : JSON.stringify(body),
  });
  let data = null;
  try { data = await res.json(); } catch (e) { data = null; }
  if (!res.ok) {
    const err = (data && data.error) || { code: String(res.status), message: res.statusText };
    throw Object.assign(new Error(err.message), { code: err.code, status: res.status });
  }
  return data;
}

function showResult(ok, text) {
  const el = $("#result");
  el.className = ok ? "ok" : "error";
  el.textContent = text;
}

async function command(cmd, args) {
  try {
    const result = await api("POST", `/api/${cmd}`, args);
    showResult(true, `${cmd}: ok ${JSON.stringify(result)}`);
    return result;
  } catch (e) {
    showResult(false, `${cmd}: ${e.code || "error"}: ${e.message}`);
    throw e;
  }
}

// ------------------------------------------------------------------ connectors
function card(name) {
  let el = document.getElementById(`connector-${name}`);
  if (el) return el;
  el = $("#connector-template").content.firstElementChild.cloneNode(true);
  el.id = `connector-${name}`;
  el.dataset.connector = name;
  $(".name", el).textContent = name;
  $(".state", el).id = `state-${name}`;
  $(".p", el).id = `p-${name}`;
  $(".plot", el).id = `plot-${name}`;
  const pick = $(".modules-pick", el);
  for (const n of page.modules) {
    const label = document.createElement("label");
    label.innerHTML = `<input type="checkbox" class="module-pick" value="${n}" checked> ${n}`;
    pick.appendChild(label);
  }
  el.addEventListener("click", (ev) => {
    const action = ev.target && ev.target.dataset && ev.target.dataset.action;
    if (action) act(name, action).catch(() => {});
  });
  $("#connectors").appendChild(el);
  return el;
}

async function act(name, action) {
  const el = card(name);
  if (action === "authorize" || action === "start" || action === "stop") {
    await command(action, { connector: name });
  } else if (action === "allocate") {
    const modules = [...el.querySelectorAll(".module-pick:checked")].map((i) => Number(i.value));
    await command("allocate", { connector: name, modules, topology: $(".topology", el).value });
    await command("set_mode", { connector: name, bidirectional: $(".bidirectional", el).checked });
  } else if (action === "setpoint") {
    const value = Number($(".setpoint", el).value);
    if (!Number.isFinite(value) || value < 0) {
      showResult(false, "setpoint: enter a power in kW (>= 0); the direction says which way");
      return;
    }
    const discharge = $(".direction", el).value === "discharge";
    if (discharge) await command("set_mode", { connector: name, bidirectional: true });
    await command("setpoint", { connector: name, power_w: (discharge ? -1 : 1) * value * 1000 });
  }
}

function updateConnector(name, c) {
  page.connectors[name] = c;
  const el = card(name);
  const state = $(".state", el);
  state.textContent = c.state || "-";
  state.className = `state badge ${c.state || ""}`;
  state.dataset.state = c.state || "";
  $(".fault", el).textContent = c.fault ? `fault: ${c.fault}${c.fault_detail ? " (" + c.fault_detail + ")" : ""}` : "";
  const p = $(".p", el);
  p.textContent = kw(c.power_w);
  p.dataset.value = c.power_w === null || c.power_w === undefined ? "" : String(c.power_w);
  $(".v", el).textContent = fmt(c.voltage_v, 1, "V");
  $(".i", el).textContent = fmt(c.current_a, 1, "A");
  $(".sp", el).textContent = kw(c.setpoint_w);
  const lim = c.limits || {};
  $(".lim-charge", el).textContent =
    `${kw(lim.charge_power_w)} / ${fmt(lim.charge_current_a, 1, "A")} (${lim.binding_charge || "-"})`;
  $(".lim-discharge", el).textContent =
    `${kw(lim.discharge_power_w)} / ${fmt(lim.discharge_current_a, 1, "A")} (${lim.binding_discharge || "-"})`;
  const alloc = c.allocation;
  $(".alloc", el).textContent = alloc ? `${alloc.modules.join(", ")} ${alloc.topology || ""}` : "-";
  $(".energy", el).textContent =
    `${fmt((c.energy_import_wh || 0) / 1000, 3)} / ${fmt((c.energy_export_wh || 0) / 1000, 3)} kWh`;
}

function remember(name, c) {
  if (typeof c.mono !== "number") return;
  const points = page.history[name] || (page.history[name] = []);
  points.push([c.mono, c.power_w, c.voltage_v, c.current_a, c.setpoint_w]);
  while (points.length && c.mono - points[0][0] > WINDOW_S) points.shift();
  page.dirty.add(name);
}

// ------------------------------------------------------------------ plots
function drawPlot(name) {
  const canvas = document.getElementById(`plot-${name}`);
  if (!canvas) return;
  const ctx = canvas.getContext("2d");
  const w = canvas.width, h = canvas.height;
  const points = page.history[name] || [];
  ctx.clearRect(0, 0, w, h);
  ctx.font = "11px sans-serif";
  const left = 52, right = 8, stripH = (h - 18) / STRIPS.length;
  const now = points.length ? points[points.length - 1][0] : 0;
  // the time axis grows with the data, up to WINDOW_S
  const span = points.length ? Math.min(WINDOW_S, Math.max(30, now - points[0][0])) : WINDOW_S;
  const x = (mono) => left + (w - left - right) * (1 - (now - mono) / span);
  STRIPS.forEach((s, i) => {
    const top = i * stripH + 4, bottom = top + stripH - 8;
    let lo = 0, hi = 0;
    for (const p of points) {
      const v = p[s.key];
      if (v === null || v === undefined) continue;
      lo = Math.min(lo, v * s.scale); hi = Math.max(hi, v * s.scale);
    }
    if (hi - lo < 1e-9) { hi += 1; lo -= s.key === 1 ? 1 : 0; }
    const pad = (hi - lo) * 0.08; hi += pad; lo -= s.key === 1 ? pad : 0;
    const y = (v) => bottom - (bottom - top) * (v - lo) / (hi - lo);
    ctx.strokeStyle = "#dde3ec"; ctx.lineWidth = 1;
    ctx.strokeRect(left, top, w - left - right, bottom - top);
    if (lo < 0 && hi > 0) {
      ctx.beginPath(); ctx.moveTo(left, y(0)); ctx.lineTo(w - right, y(0)); ctx.stroke();
    }
    ctx.fillStyle = "#5c6575";
    ctx.fillText(`${s.label} ${s.unit}`, 4, top + 11);
    ctx.fillText(hi.toFixed(1), 4, top + 24);
    ctx.fillText(lo.toFixed(1), 4, bottom);
    if (s.key === 1) { // the setpoint, dashed
      ctx.setLineDash([4, 3]); ctx.strokeStyle = "#8a93a3"; ctx.beginPath();
      let pen = false;
      for (const p of points) {
        if (p[4] === null || p[4] === undefined) { pen = false; continue; }
        const px = x(p[0]), py = y(p[4] * s.scale);
        if (pen) ctx.lineTo(px, py); else ctx.moveTo(px, py);
        pen = true;
      }
      ctx.stroke(); ctx.setLineDash([]);
    }
    ctx.strokeStyle = s.color; ctx.lineWidth = 1.5; ctx.beginPath();
    let pen = false;
    for (const p of points) {
      const v = p[s.key];
      if (v === null || v === undefined) { pen = false; continue; }
      const px = x(p[0]), py = y(v * s.scale);
      if (pen) ctx.lineTo(px, py); else ctx.moveTo(px, py);
      pen = true;
    }
    ctx.stroke();
  });
  ctx.fillStyle = "#8a93a3";
  ctx.fillText(`last ${span >= 60 ? (span / 60).toFixed(1) + " min" : Math.round(span) + " s"}`, left, h - 3);
  const last = points.length ? points[points.length - 1] : null;
  canvas.dataset.points = String(points.length);
  canvas.dataset.lastPowerW = last && last[1] !== null ? String(last[1]) : "";
}

function drawDirty() {
  for (const name of page.dirty) drawPlot(name);
  page.dirty.clear();
}

// ------------------------------------------------------------------ modules, events
function updateModule(n, m) {
  const body = $("#modules tbody");
  let row = document.getElementById(`module-${n}`);
  if (!row) {
    row = document.createElement("tr");
    row.id = `module-${n}`;
    row.innerHTML = "<td></td>".repeat(11);
    const rows = [...body.children];
    const after = rows.find((r) => Number(r.id.split("-")[1]) > Number(n));
    body.insertBefore(row, after || null);
  }
  const faults = [];
  if (m.tripped) faults.push("tripped");
  if (m.dc_fault_word) faults.push(`DC 0x${Number(m.dc_fault_word).toString(16)}`);
  if (m.ac_fault_word) faults.push(`AC 0x${Number(m.ac_fault_word).toString(16)}`);
  const cells = [
    n, m.connector || "-", m.online ? "yes" : "no",
    DCDC_STATES[m.dcdc_state] || (m.dcdc_state ?? "-"), DCDC_STATES[m.afe_state] || (m.afe_state ?? "-"),
    fmt(m.voltage_v, 1, "V"), fmt(m.current_a, 1, "A"), kw(m.power_w),
    fmt(m.temperature_c, 1, "°C"), m.derating ? fmt(m.derating * 100, 0, "%") : "-",
    faults.join(", ") || "-",
  ];
  cells.forEach((text, i) => { row.children[i].textContent = String(text); });
}

function describe(e) {
  switch (e.kind) {
    case "state_changed": return `${e.from} -> ${e.to}${e.text ? " (" + e.text + ")" : ""}`;
    case "fault": return `FAULT ${e.reason}: ${e.text || ""}${e.detail ? " (" + e.detail + ")" : ""}`;
    case "command":
      return `${e.command} ${e.accepted === false ? "refused" + (e.code ? " (" + e.code + ")" : "") : "accepted"}`;
    case "command_applied": return `${e.command} applied`;
    case "notice": return `notice ${e.notice}${e.text ? ": " + e.text : ""}`;
    case "node": return `node ${e.node} ${e.old} -> ${e.new}${e.text ? ": " + e.text : ""}`;
    case "emcy": return `EMCY ${e.node} 0x${Number(e.code || 0).toString(16)} ${e.detail || ""}`;
    default: return `${e.kind || "event"}${e.text ? ": " + e.text : ""}`;
  }
}

function addEvent(e) {
  const list = $("#events");
  const li = document.createElement("li");
  const time = (e.t || "").replace("T", " ").replace("Z", "");
  const what = describe(e);
  li.textContent = `${time} ${e.connector ? "[" + e.connector + "] " : ""}${what}`;
  if (e.kind === "fault" || e.kind === "emcy" || e.kind === "bus_fault") li.className = "fault";
  list.insertBefore(li, list.firstChild);
  while (list.children.length > MAX_EVENTS) list.removeChild(list.lastChild);
}

function updateStation(s) {
  const parts = [];
  if (s.name) parts.push(s.name);
  if (s.nodes_operational !== undefined) parts.push(`nodes ${s.nodes_operational}/${s.nodes_total}`);
  const load = s.bus_load_percent !== undefined ? s.bus_load_percent : s.bus && s.bus.load_percent;
  if (load !== undefined) parts.push(`bus load ${fmt(load, 1, "%")}`);
  if (parts.length) $("#station-line").textContent = parts.join(" · ");
}

// ------------------------------------------------------------------ telemetry
function onMessage(topic, payload) {
  if (topic.startsWith("connector.")) {
    const name = topic.slice("connector.".length);
    updateConnector(name, payload);
    remember(name, payload);
  } else if (topic.startsWith("module.")) {
    updateModule(topic.slice("module.".length), payload);
  } else if (topic === "event") {
    addEvent(payload);
  } else if (topic === "station") {
    updateStation(payload);
  }
}

function connect() {
  const source = new EventSource("/api/events");
  const link = $("#link");
  source.onopen = () => { link.textContent = "live"; link.className = "badge on"; };
  source.onerror = () => { link.textContent = "reconnecting"; link.className = "badge off"; };
  source.onmessage = (ev) => {
    try {
      const msg = JSON.parse(ev.data);
      onMessage(msg.topic, msg.payload);
    } catch (e) {
      console.warn("bad telemetry message", e);
    }
  };
}

// ------------------------------------------------------------------ start
function login() {
  const form = $("#login");
  const stored = sessionStorage.getItem("bptd-credentials");
  const user = sessionStorage.getItem("bptd-user");
  if (stored) { page.credentials = stored; $("#login-state").textContent = `as ${user}`; }
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    const u = $("#login-user").value, p = $("#login-password").value;
    if (!u) { page.credentials = null; $("#login-state").textContent = "read only"; return; }
    page.credentials = b64(`${u}:${p}`);
    sessionStorage.setItem("bptd-credentials", page.credentials);
    sessionStorage.setItem("bptd-user", u);
    $("#login-state").textContent = `as ${u}`;
    $("#login-password").value = "";
  });
}

async function main() {
  login();
  const status = await api("GET", "/api/status");
  page.modules = Object.keys(status.modules || {}).map(Number).sort((a, b) => a - b);
  updateStation(status.station || {});
  for (const [name, c] of Object.entries(status.connectors || {})) {
    updateConnector(name, c);
    try {
      const h = await api("GET", `/api/history?connector=${encodeURIComponent(name)}&seconds=${WINDOW_S}`);
      page.history[name] = h.points;
      page.dirty.add(name);
    } catch (e) {
      page.history[name] = [];
    }
  }
  for (const [n, m] of Object.entries(status.modules || {})) updateModule(n, m);
  drawDirty();
  setInterval(drawDirty, 250);
  connect();
  document.body.dataset.ready = "true";
}

main().catch((e) => showResult(false, `cannot load the station: ${e.message}`));
