// The aimeta web page: start/stop a rating job, follow its events, show the results.
// Plain JavaScript, no libraries. Events come as server-sent events from /events; when the
// stream cannot be used the page polls /log?after=N instead. /status gives progress and ETA.
"use strict";

(function () {
  const $ = (id) => document.getElementById(id);
  const TOKEN_KEY = "aimeta-token";
  const MAX_LOG_LINES = 2000;

  // With --allow-remote the page is opened with ?token=...: keep it for this tab and take it
  // out of the address bar (the server also sets a same-site cookie for images and links).
  const params = new URLSearchParams(window.location.search);
  if (params.has("token")) {
    sessionStorage.setItem(TOKEN_KEY, params.get("token"));
    params.delete("token");
    const rest = params.toString();
    history.replaceState(null, "", window.location.pathname + (rest ? "?" + rest : ""));
  }
  const token = sessionStorage.getItem(TOKEN_KEY);

  const state = {
    lastSeq: 0,
    source: null,
    pollTimer: null,
    statusTimer: null,
    results: [],
    criteria: [],
    sortKey: null,
    sortAsc: true,
    running: false,
  };

  function api(path, options = {}) {
    const headers = Object.assign({}, options.headers || {});
    if (token) headers["X-Aimeta-Token"] = token;
    return fetch(path, Object.assign({}, options, { headers, credentials: "same-origin" }));
  }

  function withToken(url) {
    return token ? url + (url.includes("?") ? "&" : "?") + "token=" + encodeURIComponent(token) : url;
  }

  function imageUrl(path) {
    return withToken("image_proxy?path=" + encodeURIComponent(path));
  }

  function baseName(path) {
    return String(path).split(/[\\/]/).pop();
  }

  function starText(n) {
    const stars = Math.max(0, Math.min(5, Number(n) || 0));
    return "★".repeat(stars) + "☆".repeat(5 - stars);
  }

  function formatSeconds(seconds) {
    if (seconds === null || seconds === undefined) return "–";
    const s = Math.round(seconds);
    const m = Math.floor(s / 60);
    return m >= 60 ? `${Math.floor(m / 60)} h ${m % 60} min` : `${m}:${String(s % 60).padStart(2, "0")}`;
  }

  // -- the log ---------------------------------------------------------------------------

  function addLogLine(entry) {
    if (entry.level === "debug") return;
    const log = $("log");
    const line = document.createElement("li");
    line.className = "level-" + entry.level + " kind-" + entry.kind;
    const time = new Date(entry.time * 1000).toLocaleTimeString();
    line.textContent = `${time}  ${entry.text}`;
    const atBottom = log.scrollTop + log.clientHeight >= log.scrollHeight - 4;
    log.appendChild(line);
    while (log.childElementCount > MAX_LOG_LINES) log.removeChild(log.firstElementChild);
    if (atBottom) log.scrollTop = log.scrollHeight;
  }

  // -- events ----------------------------------------------------------------------------

  function handle(entry) {
    if (entry.seq && entry.seq <= state.lastSeq) return;
    if (entry.seq) state.lastSeq = entry.seq;
    addLogLine(entry);
    const data = entry.data || {};
    switch (entry.kind) {
      case "job":
        resetJob();
        setRunning(true);
        break;
      case "started":
        updateProgress({ done: 0, total: data.total, counts: {} });
        break;
      case "sent":
        showNow(data.path, null);
        break;
      case "item":
        addResult(data);
        if (data.ok && !data.dry_run) showNow(data.path, data);
        break;
      case "end":
        finishJob(data);
        break;
    }
  }

  function follow(after) {
    stopFollowing();
    state.lastSeq = Math.max(state.lastSeq, after);
    startStatusPolling();
    if (!window.EventSource) {
      pollLog();
      return;
    }
    const source = new EventSource(withToken("events?after=" + state.lastSeq));
    state.source = source;
    let failures = 0;
    const kinds = ["job", "log", "started", "sent", "item", "finished", "end"];
    for (const kind of kinds) {
      source.addEventListener(kind, (message) => {
        failures = 0;
        const entry = JSON.parse(message.data);
        handle(entry);
        if (kind === "end") stopFollowing(true);
      });
    }
    source.onerror = () => {
      failures += 1;
      // The browser retries by itself; after repeated failures fall back to polling.
      if (source.readyState === EventSource.CLOSED || failures >= 3) {
        source.close();
        state.source = null;
        pollLog();
      }
    };
  }

  function pollLog() {
    clearTimeout(state.pollTimer);
    api("log?after=" + state.lastSeq)
      .then((response) => response.json())
      .then((body) => {
        let ended = false;
        for (const entry of body.entries) {
          handle(entry);
          if (entry.kind === "end") ended = true;
        }
        if (ended || (!body.running && body.entries.length === 0)) {
          stopFollowing(true);
          refreshStatus();
        } else {
          state.pollTimer = setTimeout(pollLog, 1000);
        }
      })
      .catch(() => {
        state.pollTimer = setTimeout(pollLog, 2000);
      });
  }

  function stopFollowing(keepStatus) {
    if (state.source) state.source.close();
    state.source = null;
    clearTimeout(state.pollTimer);
    if (!keepStatus) clearInterval(state.statusTimer);
  }

  function startStatusPolling() {
    clearInterval(state.statusTimer);
    state.statusTimer = setInterval(refreshStatus, 1000);
  }

  function refreshStatus() {
    return api("status")
      .then((response) => response.json())
      .then((status) => {
        renderStatus(status);
        if (!["starting", "running", "stopping"].includes(status.state)) {
          clearInterval(state.statusTimer);
        }
        return status;
      });
  }

  // -- job state ---------------------------------------------------------------------------

  function setRunning(running) {
    state.running = running;
    $("start").disabled = running;
    $("stop").disabled = !running;
  }

  function resetJob() {
    state.results = [];
    state.criteria = [];
    renderTable();
    $("histogram-box").hidden = true;
    $("summary").textContent = "";
    $("now-name").textContent = "";
    $("now-stars").textContent = "";
    $("now-scores").replaceChildren();
    $("now-keywords").textContent = "";
    $("now-img").hidden = true;
    $("now-placeholder").hidden = false;
    updateProgress({ done: 0, total: null, counts: {} });
  }

  function renderStatus(status) {
    $("state").textContent = status.state;
    $("state").dataset.state = status.state;
    setRunning(["starting", "running", "stopping"].includes(status.state));
    if (status.state !== "idle") updateProgress(status);
    if (status.csv_path) {
      const link = $("csv-link");
      link.href = withToken("download_last_csv");
      link.textContent = `Download the CSV (${status.csv_rows} rows, ${baseName(status.csv_path)})`;
      link.hidden = false;
    }
  }

  function updateProgress(status) {
    const bar = $("progress");
    const counts = status.counts || {};
    const total = status.total;
    const done = status.done || 0;
    const ended = ["finished", "stopped", "failed"].includes(status.state);
    let percent = 0;
    if (total) percent = Math.round((100 * done) / total);
    else if (ended && total === 0) percent = 100;
    bar.value = percent;
    bar.textContent = percent + " %";
    const parts = [];
    parts.push(total === null || total === undefined ? "counting images…" : `${done} / ${total} (${percent} %)`);
    parts.push(`${counts.rated || 0} rated`, `${counts.skipped || 0} skipped`, `${counts.failed || 0} failed`);
    if (status.state === "running" && status.eta_s !== null && status.eta_s !== undefined) {
      parts.push("ETA " + formatSeconds(status.eta_s));
    }
    if (status.elapsed_s !== undefined) parts.push("elapsed " + formatSeconds(status.elapsed_s));
    $("progress-text").textContent = parts.join(" · ");
  }

  function finishJob(data) {
    setRunning(false);
    const result = data.result || {};
    const summary = $("summary");
    if (data.error) {
      summary.textContent = `Job ${data.state}: ${data.error}`;
      summary.className = "summary error-text";
    } else {
      const mean = result.mean === null || result.mean === undefined ? "–" : result.mean.toFixed(2);
      summary.textContent = `Job ${data.state}: ${result.rated || 0} rated, ${result.skipped || 0} skipped, ` +
        `${result.failed || 0} failed in ${formatSeconds(result.wall_s)} · mean ${mean} ★`;
      summary.className = "summary";
    }
    if (result.histogram) renderHistogram(result.histogram, result);
    refreshStatus();
  }

  // -- the image being rated ---------------------------------------------------------------

  function showNow(path, data) {
    const img = $("now-img");
    img.onerror = () => {
      img.hidden = true;
      $("now-placeholder").hidden = false;
      $("now-placeholder").textContent = "No preview of this image yet";
    };
    img.onload = () => {
      img.hidden = false;
      $("now-placeholder").hidden = true;
    };
    img.alt = baseName(path);
    img.src = imageUrl(path);
    $("now-name").textContent = baseName(path);
    const scores = $("now-scores");
    scores.replaceChildren();
    if (!data) {
      $("now-stars").textContent = "rating…";
      $("now-stars").setAttribute("aria-label", "being rated");
      $("now-keywords").textContent = "";
      return;
    }
    $("now-stars").textContent = `${starText(data.overall)} ${data.overall}/5`;
    $("now-stars").setAttribute("aria-label", `${data.overall} of 5 stars`);
    for (const [key, value] of Object.entries(data.scores || {})) {
      const item = document.createElement("li");
      const label = document.createElement("span");
      label.textContent = key;
      const meter = document.createElement("meter");
      meter.min = 0;
      meter.max = 10;
      meter.value = Number(value) || 0;
      meter.setAttribute("aria-label", `${key} ${value} of 10`);
      const number = document.createElement("span");
      number.textContent = value;
      item.append(label, meter, number);
      scores.appendChild(item);
    }
    $("now-keywords").textContent = (data.keywords || []).join(", ");
  }

  // -- results table -----------------------------------------------------------------------

  function addResult(data) {
    if (data.ok && data.scores) {
      for (const key of Object.keys(data.scores)) {
        if (!state.criteria.includes(key)) state.criteria.push(key);
      }
    }
    state.results.push(data);
    renderTable();
  }

  function columns() {
    return [
      { key: "name", label: "Image", value: (r) => baseName(r.path) },
      { key: "overall", label: "Stars", value: (r) => (r.ok && !r.dry_run ? Number(r.overall) : -1), numeric: true },
      ...state.criteria.map((c) => ({ key: c, label: c, value: (r) => (r.scores ? Number(r.scores[c]) : -1), numeric: true })),
      { key: "keywords", label: "Keywords", value: (r) => (r.keywords || []).join(", ") },
      { key: "duration_s", label: "Seconds", value: (r) => (r.duration_s === undefined ? -1 : Number(r.duration_s)), numeric: true },
    ];
  }

  function renderTable() {
    const head = $("results-head");
    const cols = columns();
    head.replaceChildren();
    for (const col of cols) {
      const th = document.createElement("th");
      th.scope = "col";
      const button = document.createElement("button");
      button.type = "button";
      button.textContent = col.label;
      button.addEventListener("click", () => {
        state.sortAsc = state.sortKey === col.key ? !state.sortAsc : !col.numeric;
        state.sortKey = col.key;
        renderTable();
      });
      th.appendChild(button);
      if (state.sortKey === col.key) th.setAttribute("aria-sort", state.sortAsc ? "ascending" : "descending");
      head.appendChild(th);
    }
    let rows = state.results.slice();
    const sortCol = cols.find((c) => c.key === state.sortKey);
    if (sortCol) {
      rows.sort((a, b) => {
        const x = sortCol.value(a);
        const y = sortCol.value(b);
        const order = sortCol.numeric ? x - y : String(x).localeCompare(String(y));
        return state.sortAsc ? order : -order;
      });
    }
    const body = $("results-body");
    body.replaceChildren();
    for (const r of rows) {
      const tr = document.createElement("tr");
      if (!r.ok) tr.className = "failed";
      for (const col of cols) {
        const td = document.createElement("td");
        if (col.key === "name") {
          const img = document.createElement("img");
          img.className = "thumb";
          img.loading = "lazy";
          img.alt = "";
          img.src = imageUrl(r.path);
          img.onerror = () => img.remove();
          const name = document.createElement("span");
          name.textContent = baseName(r.path);
          name.title = r.path;
          td.append(img, name);
        } else if (col.key === "overall") {
          if (r.dry_run) td.textContent = "would rate";
          else if (!r.ok) td.textContent = "failed: " + (r.reason || "");
          else {
            td.textContent = starText(r.overall);
            td.className = "stars";
            td.setAttribute("aria-label", `${r.overall} of 5 stars`);
          }
        } else {
          const v = col.value(r);
          td.textContent = v === -1 || Number.isNaN(v) ? "" : v;
          if (col.numeric) td.className = "num";
        }
        tr.appendChild(td);
      }
      body.appendChild(tr);
    }
    const rated = state.results.filter((r) => r.ok && !r.dry_run).length;
    $("results-count").textContent = state.results.length ? `(${rated} rated of ${state.results.length})` : "";
  }

  // -- star histogram ----------------------------------------------------------------------

  function renderHistogram(histogram, result) {
    const list = $("histogram");
    list.replaceChildren();
    const counts = [5, 4, 3, 2, 1].map((s) => Number(histogram[s] || 0));
    const widest = Math.max(1, ...counts);
    [5, 4, 3, 2, 1].forEach((stars, index) => {
      const count = counts[index];
      const item = document.createElement("li");
      const label = document.createElement("span");
      label.className = "stars";
      label.textContent = starText(stars);
      label.setAttribute("aria-label", `${stars} stars`);
      const bar = document.createElement("span");
      bar.className = "bar";
      bar.style.width = `${(100 * count) / widest}%`;
      const number = document.createElement("span");
      number.className = "num";
      number.textContent = count;
      const track = document.createElement("span");
      track.className = "track";
      track.appendChild(bar);
      item.append(label, track, number);
      list.appendChild(item);
    });
    const median = result.median === null || result.median === undefined ? "–" : result.median;
    $("histogram-note").textContent = counts.some(Boolean) ? `median ${median} ★` : "no image rated in this job";
    $("histogram-box").hidden = false;
  }

  // -- the form ----------------------------------------------------------------------------

  function formBody() {
    const form = $("start-form");
    const body = {};
    for (const element of form.elements) {
      if (!element.name) continue;
      if (element.type === "checkbox") body[element.name] = element.checked;
      else if (element.value.trim() === "") continue;
      else if (element.type === "number") body[element.name] = Number(element.value);
      else if (element.name === "api_urls") body.api_urls = element.value.split(/[\s,]+/).filter(Boolean);
      else body[element.name] = element.value.trim();
    }
    return body;
  }

  function showErrors(container, errors, general) {
    for (const p of container.querySelectorAll("[data-error-for]")) {
      const message = errors[p.dataset.errorFor] || "";
      p.textContent = message;
      const input = container.querySelector(`[name="${p.dataset.errorFor}"]`);
      if (input) input.setAttribute("aria-invalid", message ? "true" : "false");
      if (message) delete errors[p.dataset.errorFor];
    }
    const rest = Object.entries(errors).map(([k, v]) => `${k}: ${v}`);
    if (general) general.textContent = rest.join("; ");
  }

  async function start(event) {
    event.preventDefault();
    showErrors($("start-form"), {}, $("form-error"));
    $("start").disabled = true;
    let response;
    try {
      response = await api("start_processing", {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify(formBody()),
      });
    } catch (error) {
      $("form-error").textContent = "The server does not answer: " + error;
      $("start").disabled = false;
      return;
    }
    const body = await response.json();
    if (response.ok) {
      follow(body.after);
      refreshStatus();
      return;
    }
    $("start").disabled = false;
    if (response.status === 422) showErrors($("start-form"), Object.assign({}, body.errors || {}), $("form-error"));
    else $("form-error").textContent = body.detail || `The server answered ${response.status}`;
  }

  async function stop() {
    $("stop").disabled = true;
    await api("stop_processing", { method: "POST" });
    refreshStatus();
  }

  // -- prompts -----------------------------------------------------------------------------

  function byteLength(text) {
    return new TextEncoder().encode(text).length;
  }

  let maxPromptBytes = 32768;

  function showSizes() {
    for (const [id, label] of [["system-prompt", "system-size"], ["user-prompt", "user-size"]]) {
      const size = byteLength($(id).value);
      $(label).textContent = `(${Math.ceil(size / 1024)} of ${maxPromptBytes / 1024} KB)`;
      $(label).className = size > maxPromptBytes ? "error-text" : "muted";
    }
  }

  async function loadPrompts() {
    const response = await api("get_prompts");
    const body = await response.json();
    if (!response.ok) {
      $("prompts-message").textContent = body.detail || "cannot load the prompts";
      return;
    }
    maxPromptBytes = body.max_bytes || maxPromptBytes;
    $("system-prompt").value = body.system;
    $("user-prompt").value = body.user;
    $("prompts-dir").textContent = body.prompts_dir;
    const fixed = $("prompts-fixed");
    fixed.hidden = !body.fixed_files.length;
    fixed.textContent = body.fixed_files.length
      ? "The server was started with prompt files (" + body.fixed_files.join(", ") + "); they take precedence over saved prompts."
      : "";
    showSizes();
    $("prompts-message").textContent = "";
  }

  async function savePrompts() {
    const container = $("prompts");
    showErrors(container, {}, null);
    const response = await api("save_prompts", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ system: $("system-prompt").value, user: $("user-prompt").value }),
    });
    const body = await response.json().catch(() => ({}));
    if (response.ok) {
      $("prompts-message").textContent = "Saved to " + body.saved_to;
    } else {
      showErrors(container, Object.assign({}, body.errors || {}), null);
      $("prompts-message").textContent = body.detail || `The server answered ${response.status}`;
    }
  }

  // -- start-up ----------------------------------------------------------------------------

  document.addEventListener("DOMContentLoaded", () => {
    $("start-form").addEventListener("submit", start);
    $("stop").addEventListener("click", stop);
    $("load-prompts").addEventListener("click", loadPrompts);
    $("save-prompts").addEventListener("click", savePrompts);
    $("system-prompt").addEventListener("input", showSizes);
    $("user-prompt").addEventListener("input", showSizes);
    renderTable();
    loadPrompts();
    refreshStatus().then((status) => {
      if (status.job_id) {
        if (status.folder) $("folder").value = status.folder;
        follow(0); // replay the current or last job
      }
    });
  });
})();
