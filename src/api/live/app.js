// The supervisors' live page. Plain JavaScript, no build step.
//
// Authentication: the supervisor's token is typed into the login form and kept in
// sessionStorage (this tab only, gone when it closes). API calls send it as a bearer
// token; the event stream, which EventSource opens without headers, uses a one-time
// ticket from POST /api/v1/live/ticket. Every "snapshot" event carries the whole view.
"use strict";

const TOKEN_KEY = "tongdai.token";
const LANG_KEY = "tongdai.lang";

const T = {
  vi: {
    title: "Tổng đài 9090 — Giám sát trực tiếp", connected: "Đang kết nối trực tiếp",
    disconnected: "Mất kết nối", logout: "Đăng xuất", login_title: "Đăng nhập",
    login_help: "Nhập mã truy cập (token) của giám sát viên. Mã chỉ được giữ trong tab này.",
    token_placeholder: "Mã truy cập", login: "Đăng nhập", today: "Hôm nay",
    active_calls: "Cuộc gọi đang diễn ra", inbound: "Gọi vào", outbound: "Gọi ra",
    places_left: "Chỗ còn lại", registered: "đã đăng ký", vinmec_waiting: "Vinmec — chờ xử lý",
    oldest: "Lâu nhất", calls_today: "Cuộc gọi hôm nay", answered: "Đã trả lời",
    direction: "Hướng", number: "Số thuê bao", line: "Đường dây", state: "Trạng thái",
    ivr_node: "Bước IVR", duration: "Thời lượng", no_calls: "Không có cuộc gọi nào.",
    calls_per_minute: "Cuộc gọi mỗi phút (60 phút qua)", dispositions: "Kết quả cuộc gọi hôm nay",
    registrations: "Đăng ký theo kênh và trạng thái", vinmec_queue: "Hàng đợi Vinmec",
    lines: "Đường dây", active: "Đang gọi", today_calls: "Hôm nay", last_hour: "1 giờ qua",
    updated: "Cập nhật lúc", bad_token: "Mã truy cập không đúng.",
    wrong_role: "Mã này không có quyền giám sát.", other_lang: "English",
    st_ringing: "Đang đổ chuông", st_answered: "Đang đàm thoại",
    d_answered: "Trả lời", d_busy: "Máy bận", d_no_answer: "Không trả lời", d_rejected: "Từ chối",
    d_invalid_number: "Sai số", d_congested: "Nghẽn mạng", d_failed: "Lỗi", d_canceled: "Hủy",
    c_hotline: "Gọi vào 9090", c_outbound_call: "9090 gọi ra", c_fanpage: "Fanpage",
    s_registered: "Đã đăng ký", s_sent_to_vinmec: "Đã chuyển Vinmec",
    s_appointment_booked: "Đã đặt lịch", s_consulted: "Đã tư vấn", s_surveyed: "Đã khảo sát",
    s_cancelled: "Đã hủy", s_unreachable: "Không liên lạc được",
    q_waiting: "Chờ xử lý", q_claimed: "Đang xử lý", q_done: "Đã xếp lịch", q_cancelled: "Đã hủy",
    channel: "Kênh", status: "Trạng thái",
    campaigns: "Chiến dịch gọi ra", outbound_queue: "Hàng đợi gọi ra", running_campaigns: "chiến dịch đang chạy",
    campaign: "Chiến dịch", kind: "Loại", progress: "Tiến độ", answer_rate: "Tỷ lệ nghe máy", held: "Tạm dừng gọi",
    no_campaigns: "Chưa có chiến dịch nào.",
    k_invitation: "Mời đăng ký", k_survey: "Khảo sát",
    cs_draft: "Nháp", cs_running: "Đang chạy", cs_paused: "Tạm dừng", cs_stopped: "Đã dừng",
    cs_completed: "Hoàn thành",
    p_waiting: "Chờ gọi", p_dialing: "Đang quay số", p_in_call: "Đang đàm thoại",
    p_retry_pending: "Chờ gọi lại", p_done: "Đã xong",
    satisfaction: "Mức độ hài lòng (khảo sát)", satisfied: "hài lòng (4–5 điểm)",
    mean_score: "Điểm trung bình (1–5)", respondents: "Người trả lời", completed_short: "hoàn thành",
    partial_short: "một phần", score: "điểm",
    trunk: "Trunk SIP", th_up: "Hoạt động", th_down: "Mất kết nối", th_unknown: "Chưa rõ",
    th_not_configured: "Chưa cấu hình", trunk_host: "Máy chủ", trunk_register: "Đăng ký (REGISTER)",
    registered_until: "Đã đăng ký đến", not_registered: "Chưa đăng ký", register_off: "Không dùng",
    trunk_options: "Kiểm tra OPTIONS", reachable: "Liên lạc được", unreachable: "Không liên lạc được",
    no_verdict: "Chưa có kết quả", last_error: "Lỗi gần nhất", failures: "lần lỗi liên tiếp",
  },
  en: {
    title: "9090 hotline — live view", connected: "Live", disconnected: "Disconnected",
    logout: "Sign out", login_title: "Sign in",
    login_help: "Enter your supervisor access token. It is kept in this tab only.",
    token_placeholder: "Access token", login: "Sign in", today: "Today",
    active_calls: "Calls in progress", inbound: "Inbound", outbound: "Outbound",
    places_left: "Places left", registered: "registered", vinmec_waiting: "Vinmec — waiting",
    oldest: "Oldest", calls_today: "Calls today", answered: "Answered",
    direction: "Direction", number: "Subscriber", line: "Line", state: "State",
    ivr_node: "IVR step", duration: "Duration", no_calls: "No calls right now.",
    calls_per_minute: "Calls per minute (last 60 minutes)", dispositions: "Call outcomes today",
    registrations: "Registrations by channel and status", vinmec_queue: "Vinmec queue",
    lines: "Lines", active: "In call", today_calls: "Today", last_hour: "Last hour",
    updated: "Updated at", bad_token: "Unknown access token.",
    wrong_role: "This token may not use the supervisors' view.", other_lang: "Tiếng Việt",
    st_ringing: "Ringing", st_answered: "Talking",
    d_answered: "Answered", d_busy: "Busy", d_no_answer: "No answer", d_rejected: "Rejected",
    d_invalid_number: "Invalid number", d_congested: "Congested", d_failed: "Failed", d_canceled: "Canceled",
    c_hotline: "Called 9090", c_outbound_call: "Called by 9090", c_fanpage: "Fanpage",
    s_registered: "Registered", s_sent_to_vinmec: "Sent to Vinmec",
    s_appointment_booked: "Appointment booked", s_consulted: "Consulted", s_surveyed: "Surveyed",
    s_cancelled: "Cancelled", s_unreachable: "Unreachable",
    q_waiting: "Waiting", q_claimed: "Being handled", q_done: "Scheduled", q_cancelled: "Cancelled",
    channel: "Channel", status: "Status",
    campaigns: "Outbound campaigns", outbound_queue: "Outbound queue", running_campaigns: "campaigns running",
    campaign: "Campaign", kind: "Type", progress: "Progress", answer_rate: "Answer rate", held: "Held",
    no_campaigns: "No campaigns yet.",
    k_invitation: "Invitation", k_survey: "Survey",
    cs_draft: "Draft", cs_running: "Running", cs_paused: "Paused", cs_stopped: "Stopped",
    cs_completed: "Completed",
    p_waiting: "Waiting", p_dialing: "Dialling", p_in_call: "In call",
    p_retry_pending: "Retry pending", p_done: "Done",
    satisfaction: "Satisfaction (survey)", satisfied: "satisfied (4–5)",
    mean_score: "Mean score (1–5)", respondents: "Respondents", completed_short: "completed",
    partial_short: "partial", score: "score",
    trunk: "SIP trunk", th_up: "Up", th_down: "Down", th_unknown: "Unknown",
    th_not_configured: "Not configured", trunk_host: "Host", trunk_register: "Registration",
    registered_until: "Registered until", not_registered: "Not registered", register_off: "Not used",
    trunk_options: "OPTIONS keepalive", reachable: "Reachable", unreachable: "Unreachable",
    no_verdict: "No result yet", last_error: "Last error", failures: "failures in a row",
  },
};

// Display order (the JSON maps are keyed by name).
const ORDER = {
  c_: ["hotline", "outbound_call", "fanpage"],
  s_: ["registered", "sent_to_vinmec", "appointment_booked", "consulted", "surveyed", "unreachable", "cancelled"],
  q_: ["waiting", "claimed", "done", "cancelled"],
  d_: ["answered", "busy", "no_answer", "rejected", "invalid_number", "congested", "failed", "canceled"],
};

function ordered(map, prefix) {
  const known = ORDER[prefix] || [];
  const keys = known.filter((k) => k in map).concat(Object.keys(map).filter((k) => !known.includes(k)));
  return keys.map((k) => [k, map[k]]);
}

let lang = localStorage.getItem(LANG_KEY) === "en" ? "en" : "vi";
let source = null;
let last = null;
let retry = null;
const $ = (id) => document.getElementById(id);
const t = (key) => (T[lang][key] !== undefined ? T[lang][key] : key);

function zone() {
  return last ? last.program.timezone : "Asia/Ho_Chi_Minh";
}

function fmtTime(date) {
  return new Intl.DateTimeFormat(lang === "vi" ? "vi-VN" : "en-GB", {
    timeZone: zone(), hour: "2-digit", minute: "2-digit", second: "2-digit", hour12: false,
  }).format(date);
}

function fmtDuration(seconds) {
  seconds = Math.max(0, Math.floor(seconds));
  const h = Math.floor(seconds / 3600), m = Math.floor((seconds % 3600) / 60), s = seconds % 60;
  const two = (n) => String(n).padStart(2, "0");
  return (h ? h + ":" + two(m) : m) + ":" + two(s);
}

function applyLanguage() {
  document.documentElement.lang = lang;
  document.title = t("title");
  document.querySelectorAll("[data-i18n]").forEach((el) => { el.textContent = t(el.dataset.i18n); });
  document.querySelectorAll("[data-i18n-placeholder]").forEach((el) => {
    el.placeholder = t(el.dataset.i18nPlaceholder);
  });
  $("lang").textContent = t("other_lang");
  setConnected(source !== null && source.readyState === EventSource.OPEN);
  if (last) render(last);
}

function setConnected(on) {
  const el = $("conn");
  el.className = "conn " + (on ? "on" : "off");
  el.textContent = t(on ? "connected" : "disconnected");
}

function el(tag, text, cls) {
  const e = document.createElement(tag);
  if (text !== undefined) e.textContent = text;
  if (cls) e.className = cls;
  return e;
}

function row(cells, attrs) {
  const tr = document.createElement("tr");
  for (const [k, v] of Object.entries(attrs || {})) tr.setAttribute(k, v);
  for (const c of cells) {
    if (c instanceof Node) {
      const td = el("td", undefined, c.dataset && c.dataset.num ? "num" : undefined);
      td.appendChild(c);
      tr.appendChild(td);
    }
    else tr.appendChild(el("td", String(c), typeof c === "number" ? "num" : undefined));
  }
  return tr;
}

function renderCalls(s) {
  const body = $("active-rows");
  body.replaceChildren();
  const now = Date.now();
  for (const c of s.calls.active) {
    const started = Date.parse(c.started_at);
    const dur = el("span", fmtDuration((now - started) / 1000));
    dur.dataset.started = String(started);
    dur.className = "duration";
    body.appendChild(row([
      t(c.direction), c.number, c.line,
      el("span", t("st_" + c.state), "tag " + c.state), c.ivr_node || "–", dur,
    ], { "data-testid": "active-call", "data-call-id": c.call_id }));
  }
  $("no-calls").hidden = s.calls.active.length > 0;
}

function svgEl(tag, attrs, text) {
  const e = document.createElementNS("http://www.w3.org/2000/svg", tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  if (text !== undefined) e.textContent = text;
  return e;
}

function renderPerMinute(points) {
  const svg = $("cpm");
  svg.replaceChildren();
  const W = 600, H = 160, top = 10, bottom = 20;
  const max = Math.max(1, ...points.map((p) => p.count));
  const w = W / Math.max(points.length, 1);
  points.forEach((p, i) => {
    const h = ((H - top - bottom) * p.count) / max;
    const bar = svgEl("rect", { x: i * w + 1, y: H - bottom - h, width: Math.max(w - 2, 1), height: h, fill: "#0a5cad" });
    bar.appendChild(svgEl("title", {}, fmtTime(new Date(p.minute)).slice(0, 5) + " — " + p.count));
    svg.appendChild(bar);
  });
  if (points.length) {
    svg.appendChild(svgEl("text", { x: 0, y: H - 4 }, fmtTime(new Date(points[0].minute)).slice(0, 5)));
    svg.appendChild(svgEl("text", { x: W - 34, y: H - 4 }, fmtTime(new Date(points[points.length - 1].minute)).slice(0, 5)));
  }
  svg.appendChild(svgEl("text", { x: W - 60, y: 10 }, "max " + max));
}

function renderDispositions(map) {
  const svg = $("disp");
  svg.replaceChildren();
  const entries = ordered(map, "d_");
  const max = Math.max(1, ...entries.map(([, n]) => n));
  const rowH = 200 / Math.max(entries.length, 1);
  entries.forEach(([d, n], i) => {
    const y = i * rowH;
    svg.appendChild(svgEl("text", { x: 0, y: y + rowH * 0.65 }, t("d_" + d)));
    const w = (420 * n) / max;
    svg.appendChild(svgEl("rect", { x: 130, y: y + 3, width: w, height: rowH - 6,
      fill: d === "answered" ? "#1a7f37" : "#98a2b3", "data-disposition": d }));
    svg.appendChild(svgEl("text", { x: 136 + w, y: y + rowH * 0.65 }, String(n)));
  });
}

function fmtNumber(x, digits) {
  return new Intl.NumberFormat(lang === "vi" ? "vi-VN" : "en-GB", {
    minimumFractionDigits: digits, maximumFractionDigits: digits,
  }).format(x);
}

function fmtPercent(share) {
  return share === null || share === undefined ? "–" : fmtNumber(100 * share, 0) + " %";
}

// A right-aligned text cell (row() aligns only plain numbers by itself).
function numeric(text) {
  const s = el("span", text);
  s.dataset.num = "1";
  return s;
}

const PARTS = ["done", "in_call", "dialing", "retry_pending"];

// A stacked bar: done, in call, dialling, retry pending; the grey rest is waiting.
function progressBar(p) {
  const wrap = el("div");
  const bar = el("div", undefined, "stack");
  bar.dataset.testid = "campaign-progress";
  const total = Math.max(p.contacts, 1);
  for (const part of PARTS) {
    const seg = el("div", undefined, part);
    seg.dataset.part = part;
    seg.style.width = ((100 * p[part]) / total).toFixed(2) + "%";
    seg.title = t("p_" + part) + ": " + p[part];
    bar.appendChild(seg);
  }
  bar.title = PARTS.concat(["waiting"]).map((k) => t("p_" + k) + " " + p[k]).join(" · ");
  wrap.appendChild(bar);
  const detail = ordered(p.done_by_disposition, "d_").filter(([, n]) => n > 0)
    .map(([d, n]) => t("d_" + d) + " " + n).join(" · ");
  const line = el("div", t("p_done") + " " + p.done + "/" + p.contacts + (detail ? " — " + detail : ""), "done-detail");
  line.dataset.testid = "campaign-done";
  wrap.appendChild(line);
  return wrap;
}

/** The campaign's state tag, and the dialer's hold (trunk down, outside the calling
 * window …) beside it when it is not dialling. */
function campaignState(x) {
  const wrap = el("span", "");
  wrap.appendChild(el("span", t("cs_" + x.state), "tag " + x.state));
  const h = x.progress.hold;
  if (h && x.state === "running") {
    const held = el("span", " " + t("held") + ": " + h.code, "hold");
    held.title = h.detail;
    held.dataset.testid = "campaign-hold";
    wrap.appendChild(held);
  }
  return wrap;
}

function renderCampaigns(c) {
  $("oq-waiting").textContent = c.queue.waiting;
  $("oq-dialing").textContent = c.queue.dialing;
  $("oq-in-call").textContent = c.queue.in_call;
  $("oq-retry").textContent = c.queue.retry_pending;
  $("oq-done").textContent = c.queue.done;
  $("oq-running").textContent = c.running;
  const body = $("campaign-rows");
  body.replaceChildren();
  for (const x of c.campaigns) {
    const p = x.progress;
    body.appendChild(row([
      x.name, t("k_" + x.kind), campaignState(x), progressBar(p),
      p.waiting, p.dialing, p.in_call, p.retry_pending, p.done,
      numeric(fmtPercent(p.answer_rate)),
    ], { "data-testid": "campaign", "data-campaign-id": String(x.id) }));
  }
  $("no-campaigns").hidden = c.campaigns.length > 0;
}

function renderSatisfaction(s) {
  const o = s.overall.satisfaction;
  $("sat-share").textContent = fmtPercent(o.share_4_5);
  $("sat-mean").textContent = o.mean === null ? "–" : fmtNumber(o.mean, 1);
  $("sat-resp").textContent = s.overall.respondents;
  const svg = $("sat-hist");
  svg.replaceChildren();
  const max = Math.max(1, ...o.histogram);
  const w = 600 / 5;
  o.histogram.forEach((n, i) => {
    const h = (80 * n) / max;
    svg.appendChild(svgEl("rect", { x: i * w + 10, y: 90 - h, width: w - 20, height: h,
      fill: i >= 3 ? "#1a7f37" : "#98a2b3", "data-score": String(i + 1), "data-count": String(n) }));
    svg.appendChild(svgEl("text", { x: i * w + w / 2 - 14, y: 108 }, (i + 1) + " " + t("score") + ": " + n));
  });
  const body = $("sat-rows");
  body.replaceChildren();
  for (const c of s.campaigns) {
    const r = c.report;
    body.appendChild(row([
      c.name, fmtPercent(r.satisfaction.share_4_5),
      r.satisfaction.mean === null ? "–" : fmtNumber(r.satisfaction.mean, 1),
      r.respondents + " " + t("respondents").toLowerCase() + " (" + r.completed + " " + t("completed_short")
        + ", " + r.partial + " " + t("partial_short") + ")",
    ], { "data-testid": "satisfaction-campaign" }));
  }
}

function renderTrunk(tr) {
  const h = $("trunk-health");
  h.textContent = t("th_" + tr.health);
  h.className = "tag " + tr.health;
  const body = $("trunk-rows");
  body.replaceChildren();
  if (!tr.configured) return;
  const when = (ts) => (ts ? fmtTime(new Date(ts)) : "–");
  body.appendChild(row([t("trunk_host"), tr.host + (tr.addr ? " (" + tr.addr + ")" : "") + " · " + (tr.transport || "").toUpperCase()]));
  body.appendChild(row([t("trunk_register"), !tr.register ? t("register_off")
    : tr.registered ? t("registered_until") + " " + when(tr.registered_until)
      : t("not_registered") + (tr.register_failures ? " (" + tr.register_failures + " " + t("failures") + ")" : "")]));
  const options = tr.reachable === null ? t("no_verdict") : t(tr.reachable ? "reachable" : "unreachable");
  const rtt = tr.options_rtt_ms === null ? "" : " · " + fmtNumber(tr.options_rtt_ms, 1) + " ms";
  const opt = row([t("trunk_options"), options + rtt]);
  opt.dataset.testid = "trunk-options";
  body.appendChild(opt);
  if (tr.last_error) body.appendChild(row([t("last_error"), tr.last_error]));
}

function renderCounts(tbody, head, entries, prefix) {
  tbody.replaceChildren();
  tbody.appendChild(row([el("b", t(head))]));
  for (const [k, n] of entries) tbody.appendChild(row([t(prefix + k), n]));
}

function render(s) {
  last = s;
  $("login").hidden = true;
  $("dashboard").hidden = false;
  $("logout").hidden = false;
  $("program-name").textContent = s.program.name;
  $("program-today").textContent = s.program.today;
  $("active-count").textContent = s.calls.count;
  $("active-in").textContent = s.calls.inbound;
  $("active-out").textContent = s.calls.outbound;
  const r = s.registrations;
  $("cap-left").textContent = r.left;
  $("cap-used").textContent = r.used;
  $("cap-total").textContent = r.cap;
  $("cap-bar").style.width = Math.min(100, (100 * r.used) / Math.max(r.cap, 1)) + "%";
  $("queue-waiting").textContent = s.vinmec.by_status.waiting;
  $("queue-oldest").textContent =
    s.vinmec.oldest_waiting_seconds === null ? "–" : fmtDuration(s.vinmec.oldest_waiting_seconds);
  const today = Object.values(s.charts.dispositions).reduce((a, b) => a + b, 0);
  $("calls-today").textContent = today;
  $("calls-answered").textContent = s.charts.dispositions.answered || 0;
  renderCalls(s);
  renderPerMinute(s.charts.calls_per_minute);
  renderDispositions(s.charts.dispositions);
  const regs = $("reg-rows");
  renderCounts(regs, "channel", ordered(r.by_channel, "c_"), "c_");
  const byStatus = document.createElement("tbody");
  renderCounts(byStatus, "status", ordered(r.by_status, "s_"), "s_");
  regs.append(...byStatus.children);
  renderCounts($("queue-rows"), "vinmec_queue", ordered(s.vinmec.by_status, "q_"), "q_");
  const lines = $("line-rows");
  lines.replaceChildren();
  for (const l of s.lines) {
    const q = l.outbound_queue;
    const queue = q ? ["waiting", "dialing", "in_call", "retry_pending"].map((k) => t("p_" + k) + " " + q[k]).join(" · ") : "–";
    lines.appendChild(row([l.line, l.active, l.today_total, l.last_hour_total, queue], { "data-testid": "line", "data-line": l.line }));
  }
  renderCampaigns(s.campaigns);
  renderSatisfaction(s.satisfaction);
  renderTrunk(s.trunk);
  $("updated").textContent = fmtTime(new Date(s.generated_at));
}

function showLogin(message) {
  if (source) { source.close(); source = null; }
  clearTimeout(retry);
  last = null;
  $("dashboard").hidden = true;
  $("logout").hidden = true;
  $("login").hidden = false;
  $("login-error").textContent = message || "";
  setConnected(false);
}

async function api(path, method) {
  const token = sessionStorage.getItem(TOKEN_KEY);
  return fetch(path, { method: method || "GET", headers: { Authorization: "Bearer " + token } });
}

async function connect() {
  clearTimeout(retry);
  if (source) { source.close(); source = null; }
  let res;
  try {
    res = await api("/api/v1/live/ticket", "POST");
  } catch (e) {
    retry = setTimeout(connect, 2000);
    return;
  }
  if (res.status === 401) { sessionStorage.removeItem(TOKEN_KEY); showLogin(t("bad_token")); return; }
  if (res.status === 403) { sessionStorage.removeItem(TOKEN_KEY); showLogin(t("wrong_role")); return; }
  if (!res.ok) { retry = setTimeout(connect, 2000); return; }
  const { ticket } = await res.json();
  source = new EventSource("/api/v1/live/events?ticket=" + encodeURIComponent(ticket));
  source.onopen = () => setConnected(true);
  source.addEventListener("snapshot", (ev) => {
    setConnected(true);
    render(JSON.parse(ev.data));
  });
  // A ticket is good once: on any error, get a new one and reconnect.
  source.onerror = () => {
    setConnected(false);
    if (source) { source.close(); source = null; }
    retry = setTimeout(connect, 2000);
  };
}

$("login-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const token = $("token").value.trim();
  if (!token) return;
  sessionStorage.setItem(TOKEN_KEY, token);
  $("token").value = "";
  const who = await api("/api/v1/whoami");
  if (who.status !== 200) { sessionStorage.removeItem(TOKEN_KEY); showLogin(t("bad_token")); return; }
  const { role } = await who.json();
  if (role !== "supervisor" && role !== "admin") {
    sessionStorage.removeItem(TOKEN_KEY);
    showLogin(t("wrong_role"));
    return;
  }
  $("login-error").textContent = "";
  connect();
});

$("logout").addEventListener("click", () => { sessionStorage.removeItem(TOKEN_KEY); showLogin(); });
$("lang").addEventListener("click", () => {
  lang = lang === "vi" ? "en" : "vi";
  localStorage.setItem(LANG_KEY, lang);
  applyLanguage();
});

// The clock and the durations tick between snapshots.
setInterval(() => {
  $("clock").textContent = fmtTime(new Date());
  const now = Date.now();
  document.querySelectorAll("span.duration").forEach((d) => {
    d.textContent = fmtDuration((now - Number(d.dataset.started)) / 1000);
  });
}, 1000);

applyLanguage();
$("clock").textContent = fmtTime(new Date());
if (sessionStorage.getItem(TOKEN_KEY)) connect(); else showLogin();
