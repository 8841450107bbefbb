// The library page: a virtualised thumbnail grid over /api/images, facets, a detail view with
// keyboard rating. No framework, no build step: plain DOM, only this server's own API.
"use strict";

const PAGE = 200; // images fetched a request
const CELL = 208; // px of a grid cell (thumbnail + gap)
const OVERSCAN = 2; // rows drawn above and below the visible ones
const POLL_MS = 3000; // how often the page asks whether images were added

const state = {
  filters: [], // {param, value, label}
  items: [], // loaded summaries, in order
  next: null, // cursor of the next page, or null
  total: 0,
  loading: false,
  generation: 0, // bumps on every new search, so late answers of an old one are dropped
  focus: -1, // index of the focused image
  open: -1, // index shown in the detail view, or -1
  detail: null,
  cells: new Map(), // index -> element, only the drawn ones
  known: null, // images in the database when the grid was loaded (from /api/count)
  selected: new Set(), // ids of the selected images
  allMatching: false, // "select all matching": every image of the filters, loaded or not
  anchor: -1, // index a shift-click selects from
};

const $ = (id) => document.getElementById(id);

// ---- the search bar: words become filters -------------------------------------------------

const PREFIXES = {
  "model:": ["model", "model"], "-model:": ["not_model", "not model"],
  "lora:": ["lora", "LoRA"], "-lora:": ["not_lora", "not LoRA"],
  "neg:": ["neg_token", "negative"], "-neg:": ["not_neg_token", "not negative"],
  "text:": ["text", "text"], "sampler:": ["sampler", "sampler"], "seed:": ["seed", "seed"],
  "gen:": ["generator", "generator"], "folder:": ["folder", "folder"],
  "resource:": ["resource", "resource"], "rating>=": ["min_rating", "rating ≥"],
};

function parseSearch(text) {
  const found = [];
  const parts = text.match(/(?:[^,"]|"[^"]*")+/g) || [];
  for (let raw of parts) {
    raw = raw.trim();
    if (!raw) continue;
    let matched = false;
    for (const [prefix, [param, label]] of Object.entries(PREFIXES)) {
      if (raw.toLowerCase().startsWith(prefix)) {
        const value = raw.slice(prefix.length).trim().replace(/^"(.*)"$/, "$1");
        if (value) found.push({ param, value, label });
        matched = true;
        break;
      }
    }
    if (matched) continue;
    if (raw.startsWith("-") && raw.length > 1) {
      found.push({ param: "not_token", value: raw.slice(1).trim(), label: "not" });
    } else {
      found.push({ param: "token", value: raw, label: "" });
    }
  }
  return found;
}

function addFilter(param, value, label) {
  if (state.filters.some((f) => f.param === param && f.value === value)) return;
  state.filters.push({ param, value, label: label || "" });
  refresh();
}

function params(extra) {
  const query = new URLSearchParams();
  for (const f of state.filters) query.append(f.param, f.value);
  query.set("sort", $("sort").value);
  if ($("rated").value) query.set("rated", $("rated").value);
  for (const [key, value] of Object.entries(extra || {})) query.set(key, value);
  return query;
}

function drawChips() {
  const box = $("chips");
  box.replaceChildren();
  for (const f of state.filters) {
    const chip = document.createElement("button");
    chip.type = "button";
    chip.className = "chip" + (f.param.startsWith("not_") ? " exclude" : "");
    chip.title = "Remove this filter";
    chip.textContent = (f.text || (f.label ? f.label + ": " : "") + f.value) + " ✕";
    chip.addEventListener("click", () => {
      state.filters = state.filters.filter((other) => other !== f);
      refresh();
    });
    box.append(chip);
  }
}

// ---- loading pages --------------------------------------------------------------------------

async function getJSON(url) {
  const response = await fetch(url, { headers: { Accept: "application/json" } });
  const body = await response.json().catch(() => ({}));
  if (!response.ok) throw new Error(body.detail || response.statusText);
  return body;
}

async function refresh() {
  drawChips();
  document.dispatchEvent(new Event("filters-changed")); // the Insights view follows the filters
  state.generation += 1;
  state.items = [];
  state.next = null;
  state.total = 0;
  state.focus = -1;
  state.selected.clear();
  state.allMatching = false;
  state.anchor = -1;
  $("news").hidden = true;
  drawSelection();
  for (const cell of state.cells.values()) cell.remove();
  state.cells.clear();
  $("scroller").scrollTop = 0;
  state.known = await imageCount();
  await loadMore(true);
  loadFacets(state.generation);
}

async function loadMore(first) {
  if (state.loading || (!first && !state.next)) return;
  state.loading = true;
  const generation = state.generation;
  try {
    const extra = { limit: PAGE };
    if (state.next) extra.cursor = state.next;
    const page = await getJSON("/api/images?" + params(extra));
    if (generation !== state.generation) return;
    state.items.push(...page.items);
    state.next = page.next;
    state.total = page.total;
    $("count").textContent =
      `${page.total.toLocaleString()}${page.total_exact ? "" : "+"} images` +
      (state.filters.length ? " match" : "");
  } catch (error) {
    $("count").textContent = "Cannot search: " + error.message;
  } finally {
    state.loading = false;
  }
  layout();
}

// ---- images added while the page is open (aimeta watch, aimeta all) -------------------------

async function imageCount() {
  try {
    return (await getJSON("/api/count")).images;
  } catch {
    return null;
  }
}

// The cheap question first (how many images the database holds); only when that changed,
// how many match the filters now, which is what the grid would show after a reload.
async function pollNews() {
  if (document.hidden || state.known === null || state.loading) return;
  const count = await imageCount();
  if (count === null || count === state.known) return;
  const generation = state.generation;
  let page;
  try {
    page = await getJSON("/api/images?" + params({ limit: 1 }));
  } catch {
    return;
  }
  if (generation !== state.generation) return;
  // Asked once per change: the filtered count runs again only when the database changes again.
  state.known = count;
  const added = page.total - state.total;
  if (added > 0) {
    $("show-news").textContent =
      `${added.toLocaleString()} new image${added === 1 ? "" : "s"} — show`;
    $("news").hidden = false;
  }
}

// ---- the virtualised grid -------------------------------------------------------------------

function columns() {
  return Math.max(1, Math.floor($("scroller").clientWidth / CELL));
}

function layout() {
  const scroller = $("scroller");
  const cols = columns();
  // Columns share the whole width (no empty band at the right); rows keep the CELL pitch.
  const pitch = Math.floor((scroller.clientWidth - 8) / cols);
  const rows = Math.ceil(state.total / cols);
  $("canvas").style.height = rows * CELL + "px";
  const first = Math.max(0, Math.floor(scroller.scrollTop / CELL) - OVERSCAN);
  const last = Math.ceil((scroller.scrollTop + scroller.clientHeight) / CELL) + OVERSCAN;
  const from = first * cols;
  const to = Math.min(state.total, last * cols);
  // Drop the cells scrolled away; the DOM holds only what is near the view.
  for (const [index, cell] of state.cells) {
    if (index < from || index >= to || index >= state.items.length) {
      cell.remove();
      state.cells.delete(index);
    }
  }
  for (let index = from; index < Math.min(to, state.items.length); index++) {
    let cell = state.cells.get(index);
    if (!cell) {
      cell = makeCell(state.items[index], index);
      state.cells.set(index, cell);
      $("canvas").append(cell);
    }
    cell.style.width = pitch - (CELL - 200) + "px";
    cell.style.transform = `translate(${(index % cols) * pitch}px, ${Math.floor(index / cols) * CELL}px)`;
    cell.classList.toggle("focus", index === state.focus);
    cell.classList.toggle("selected", isSelected(state.items[index]));
  }
  if (to > state.items.length - cols && state.next) loadMore(false);
}

function ratingText(rating) {
  const user = rating.user;
  if (user && user.reject) return "✕ rejected";
  const parts = [];
  if (user && user.stars) parts.push("★".repeat(user.stars));
  if (user && user.pick) parts.push("⚑");
  if (rating.ai) parts.push(`AI ${rating.ai}`);
  return parts.join(" ");
}

function makeCell(item, index) {
  const cell = document.createElement("a");
  cell.className = "cell";
  cell.href = "#" + item.id;
  cell.dataset.id = item.id;
  cell.dataset.index = String(index);
  const img = document.createElement("img");
  img.src = item.thumb;
  img.alt = item.prompt || item.path;
  img.loading = "lazy";
  img.decoding = "async";
  const badge = document.createElement("span");
  badge.className = "badge";
  badge.textContent = ratingText(item.rating);
  cell.append(img, badge);
  if (item.cull && item.cull.decision !== "keep") {
    // What aimeta cull decided: the pick of a group, or a reject candidate.
    const cull = el("span", "cull " + item.cull.decision, item.cull.decision);
    cull.title = `aimeta cull: ${item.cull.decision}, ${item.cull.stars ?? "?"} stars` +
      (item.cull.group ? `, rank ${item.cull.rank} in its group` : "");
    cell.append(cull);
  }
  markCell(cell, item);
  cell.title = item.path;
  cell.addEventListener("click", (event) => {
    event.preventDefault();
    state.focus = index;
    if (event.ctrlKey || event.metaKey) toggleSelected(index);
    else if (event.shiftKey) selectRange(index);
    else openDetail(index);
  });
  return cell;
}

function markCell(cell, item) {
  const user = item.rating.user;
  cell.classList.toggle("rejected", Boolean(user && user.reject));
  cell.classList.toggle("picked", Boolean(user && user.pick));
  cell.querySelector(".badge").textContent = ratingText(item.rating);
}

// ---- selection: Ctrl-click one, Shift-click a range, or all matching ------------------------

function isSelected(item) {
  return state.allMatching || state.selected.has(item.id);
}

function leaveAllMatching() {
  // Changing a selection of all matching images starts from the ones loaded so far.
  if (!state.allMatching) return;
  state.allMatching = false;
  for (const item of state.items) state.selected.add(item.id);
}

function toggleSelected(index) {
  leaveAllMatching();
  const id = state.items[index].id;
  if (state.selected.has(id)) state.selected.delete(id);
  else state.selected.add(id);
  state.anchor = index;
  selectionChanged();
}

function selectRange(index) {
  leaveAllMatching();
  const from = state.anchor >= 0 ? state.anchor : index;
  for (let at = Math.min(from, index); at <= Math.max(from, index); at++) {
    state.selected.add(state.items[at].id);
  }
  state.anchor = index;
  selectionChanged();
}

function selectAllMatching() {
  state.allMatching = true;
  state.selected.clear();
  selectionChanged();
}

function selectNone() {
  state.allMatching = false;
  state.selected.clear();
  state.anchor = -1;
  selectionChanged();
}

function selectionCount() {
  return state.allMatching ? state.total : state.selected.size;
}

function selectionChanged() {
  drawSelection();
  layout();
}

function drawSelection() {
  const count = selectionCount();
  $("selected").textContent = count ? `${count.toLocaleString()} selected` : "";
  $("actions").hidden = count === 0;
}

// The selection's paths, prompts or tokens as text lines, from the server (it knows every
// image of "all matching", loaded or not, and the full prompts).
async function exportSelection(what) {
  const response = await fetch("/api/export?" + params(), {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ what, ids: state.allMatching ? null : [...state.selected] }),
  });
  if (!response.ok) {
    const body = await response.json().catch(() => ({}));
    throw new Error(body.detail || response.statusText);
  }
  return response.text();
}

async function copyPaths() {
  try {
    copy(await exportSelection("paths"), `${selectionCount().toLocaleString()} paths`);
  } catch (error) {
    toast("Cannot copy: " + error.message);
  }
}

async function downloadWildcards(what) {
  try {
    const text = await exportSelection(what);
    const link = el("a");
    link.href = URL.createObjectURL(new Blob([text], { type: "text/plain" }));
    link.download = `selection_${what}.txt`;
    document.body.append(link);
    link.click();
    link.remove();
    setTimeout(() => URL.revokeObjectURL(link.href), 1000);
  } catch (error) {
    toast("Cannot export: " + error.message);
  }
}

// A rating job of the selection's files, run and shown by the rating page.
async function rateSelection() {
  try {
    const response = await fetch("/api/rate?" + params(), {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ ids: state.allMatching ? null : [...state.selected] }),
    });
    const body = await response.json().catch(() => ({}));
    if (!response.ok) throw new Error(body.detail || response.statusText);
    toast(`Rating ${body.images.toLocaleString()} images: progress on the rating page`);
  } catch (error) {
    toast("Cannot rate: " + error.message);
  }
}

// ---- facets ---------------------------------------------------------------------------------

const FACETS = [
  ["checkpoints", "Checkpoints", "model", "not_model"],
  ["loras", "LoRAs", "lora", "not_lora"],
  ["tokens", "Prompt tokens", "token", "not_token"],
  ["samplers", "Samplers", "sampler", null],
  ["generators", "Generators", "generator", null],
];

async function loadFacets(generation) {
  let data;
  try {
    data = await getJSON("/api/facets?" + params());
  } catch {
    return;
  }
  if (generation !== state.generation) return;
  const box = $("facets");
  box.replaceChildren();
  const hint = document.createElement("p");
  hint.className = "hint";
  hint.textContent = "Click to filter, Alt-click to exclude" +
    (data.sampled ? ` (counts over a sample of ${data.images.toLocaleString()} matches)` : "");
  box.append(hint);
  for (const [key, title, param, notParam] of FACETS) {
    if (!data[key] || !data[key].length) continue;
    const h = document.createElement("h2");
    h.textContent = title;
    const list = document.createElement("ul");
    for (const entry of data[key]) {
      const li = document.createElement("li");
      li.append(filterLink(String(entry.value), param, notParam, title.replace(/s$/, "")));
      const count = document.createElement("span");
      count.className = "n";
      count.textContent = entry.count.toLocaleString();
      li.append(count);
      list.append(li);
    }
    box.append(h, list);
  }
  if (data.ratings && data.ratings.length) {
    const h = document.createElement("h2");
    h.textContent = "Ratings";
    const list = document.createElement("ul");
    for (const entry of data.ratings) {
      const li = document.createElement("li");
      li.textContent = entry.value === null ? "unrated" : "★".repeat(entry.value) || "0 stars";
      const count = document.createElement("span");
      count.className = "n";
      count.textContent = entry.count.toLocaleString();
      li.append(count);
      list.append(li);
    }
    box.append(h, list);
  }
}

// A value anyone can click to filter by it (Alt-click: exclude it, where that exists).
function filterLink(value, param, notParam, label) {
  const link = document.createElement("button");
  link.type = "button";
  link.className = "filter";
  link.textContent = value;
  link.title = notParam ? "Click: filter · Alt-click: exclude" : "Click: filter";
  link.addEventListener("click", (event) => {
    event.stopPropagation();
    if (event.altKey && notParam) addFilter(notParam, value, "not " + label);
    else addFilter(param, value, param === "token" ? "" : label);
    closeDetail();
  });
  return link;
}

// ---- the detail view ------------------------------------------------------------------------

async function openDetail(index) {
  if (index < 0 || index >= state.items.length) return;
  state.open = index;
  state.focus = index;
  const item = state.items[index];
  $("detail").hidden = false;
  $("big").src = `/api/images/${item.id}/file`;
  $("big").alt = item.prompt || item.path;
  layout();
  if (index >= state.items.length - 5 && state.next) loadMore(false);
  try {
    const detail = await getJSON(`/api/images/${item.id}`);
    if (state.open !== index) return;
    state.detail = detail;
    drawDetail(detail);
  } catch (error) {
    $("info-body").textContent = "Cannot read this image: " + error.message;
  }
}

function closeDetail() {
  state.open = -1;
  $("detail").hidden = true;
  $("big").removeAttribute("src");
  layout();
}

function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined && text !== null) node.textContent = String(text);
  return node;
}

function section(title) {
  const box = el("section", "part");
  box.append(el("h2", "", title));
  return box;
}

function tokenLine(tokens, param, notParam) {
  const line = el("p", "tokens");
  for (const token of tokens) {
    const link = filterLink(token.norm, param, notParam, "");
    link.classList.add("token");
    if (token.weight !== 1) {
      link.classList.add(token.weight > 1 ? "up" : "down");
      link.append(el("sup", "", token.weight));
    }
    link.title = token.raw + " — click: filter · Alt-click: exclude";
    line.append(link);
  }
  return line;
}

function infotext(detail) {
  const p = detail.parameters;
  const fields = [
    ["Steps", p.steps], ["Sampler", p.sampler], ["Schedule type", p.scheduler],
    ["CFG scale", p.cfg], ["Seed", p.seed],
    ["Size", detail.width && detail.height ? `${detail.width}x${detail.height}` : null],
    ["Model hash", p.model_hash], ["Model", p.model], ["Denoising strength", p.denoise],
    ["Clip skip", p.clip_skip],
  ].filter(([, value]) => value !== undefined && value !== null && value !== "");
  let text = detail.prompt || "";
  if (detail.negative_prompt) text += "\nNegative prompt: " + detail.negative_prompt;
  return text + "\n" + fields.map(([key, value]) => `${key}: ${value}`).join(", ");
}

function copyButton(label, text) {
  const button = el("button", "copy", label);
  button.type = "button";
  button.disabled = !text;
  button.addEventListener("click", () => copy(text, label));
  return button;
}

async function copy(text, what) {
  try {
    await navigator.clipboard.writeText(text);
  } catch {
    const area = el("textarea");
    area.value = text;
    document.body.append(area);
    area.select();
    document.execCommand("copy");
    area.remove();
  }
  toast(`${what}: copied`);
}

function toast(text) {
  const box = $("toast");
  box.textContent = text;
  box.hidden = false;
  clearTimeout(toast.timer);
  toast.timer = setTimeout(() => { box.hidden = true; }, 1600);
}

function drawDetail(detail) {
  const body = $("info-body");
  body.replaceChildren();
  body.append(el("p", "path", detail.path));
  const meta = [detail.generator, detail.width && `${detail.width}×${detail.height}`,
    detail.size && (detail.size >= 1048576 ? `${(detail.size / 1048576).toFixed(1)} MB`
      : `${Math.ceil(detail.size / 1024)} KB`)].filter(Boolean).join(" · ");
  body.append(el("p", "meta", meta));

  const rating = section("Your rating");
  const stars = el("p", "stars");
  const user = detail.user_rating || {};
  for (let n = 1; n <= 5; n++) {
    const star = el("button", "star" + (user.stars >= n ? " on" : ""), "★");
    star.type = "button";
    star.title = `${n} (key ${n})`;
    star.addEventListener("click", () => rate({ stars: user.stars === n ? 0 : n }));
    stars.append(star);
  }
  const flag = el("span", "flag" + (user.reject ? " reject" : user.pick ? " pick" : ""),
    user.reject ? "rejected" : user.pick ? "picked" : "");
  stars.append(flag);
  rating.append(stars);
  body.append(rating);

  const prompt = section("Prompt");
  prompt.append(tokenLine(detail.tokens.pos, "token", "not_token"));
  if (detail.tokens.neg.length) {
    prompt.append(el("h3", "", "Negative prompt"));
    prompt.append(tokenLine(detail.tokens.neg, "neg_token", "not_neg_token"));
  }
  const buttons = el("p", "buttons");
  buttons.append(
    copyButton("Copy prompt", detail.prompt || ""),
    copyButton("Copy seed", detail.parameters.seed || ""),
    copyButton("Copy infotext", infotext(detail)),
  );
  prompt.append(buttons);
  body.append(prompt);

  if (detail.resources.length) {
    const resources = section("Resources");
    const list = el("ul", "resources");
    for (const r of detail.resources) {
      const li = el("li");
      li.append(el("span", "kind", r.kind));
      const param = r.kind === "checkpoint" ? "model" : r.kind === "lora" ? "lora" : "resource";
      const value = param === "resource" ? `${r.kind}:${r.name}` : r.name;
      const notParam = param === "resource" ? null : "not_" + param;
      li.append(filterLink(value, param, notParam, r.kind === "checkpoint" ? "model" : r.kind));
      if (r.weight !== null) li.append(el("span", "weight", r.weight));
      if (r.civitai_name) li.append(el("span", "civitai", r.civitai_name));
      list.append(li);
    }
    resources.append(list);
    body.append(resources);
  }

  const parameters = section("Parameters");
  const table = el("dl", "params");
  for (const [key, value] of Object.entries(detail.parameters).sort()) {
    table.append(el("dt", "", key), el("dd", "", value));
  }
  parameters.append(table);
  body.append(parameters);

  if (detail.ai_ratings.length) {
    const ai = section("AI ratings");
    for (const r of detail.ai_ratings) {
      const line = el("p", "ai");
      line.append(el("strong", "", `${"★".repeat(r.overall)} ${r.overall}/5`), ` ${r.model}`);
      const scores = Object.entries(r.scores).map(([k, v]) => `${k} ${v}`).join(" · ");
      if (scores) line.append(el("span", "scores", scores));
      if (r.keywords.length) line.append(el("span", "keywords", r.keywords.join(", ")));
      ai.append(line);
    }
    body.append(ai);
  }
  if (detail.errors.length) {
    const errors = section("Errors");
    for (const e of detail.errors) errors.append(el("p", "error", `${e.stage}: ${e.reason}`));
    body.append(errors);
  }
}

// ---- rating ---------------------------------------------------------------------------------

async function rate(change, index) {
  const at = index === undefined ? (state.open >= 0 ? state.open : state.focus) : index;
  const item = state.items[at];
  if (!item) return;
  try {
    const response = await fetch(`/api/images/${item.id}/rating`, {
      method: "PUT",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify(change),
    });
    const body = await response.json();
    if (!response.ok) throw new Error(body.detail || response.statusText);
    item.rating.user = body;
    const cell = state.cells.get(at);
    if (cell) markCell(cell, item);
    if (state.open === at && state.detail) {
      state.detail.user_rating = body;
      drawDetail(state.detail);
    }
    toast(body.reject ? "Rejected" : body.pick && change.pick ? "Picked" : `Rated ${body.stars ?? 0}`);
  } catch (error) {
    toast("Not saved: " + error.message);
  }
}

// ---- keys -----------------------------------------------------------------------------------

function move(step) {
  const target = Math.max(0, Math.min(state.items.length - 1,
    (state.open >= 0 ? state.open : state.focus) + step));
  if (state.open >= 0) openDetail(target);
  else {
    state.focus = target;
    const row = Math.floor(target / columns());
    const scroller = $("scroller");
    if (row * CELL < scroller.scrollTop) scroller.scrollTop = row * CELL;
    else if ((row + 1) * CELL > scroller.scrollTop + scroller.clientHeight) {
      scroller.scrollTop = (row + 1) * CELL - scroller.clientHeight;
    }
    layout();
  }
}

document.addEventListener("keydown", (event) => {
  if (event.target instanceof HTMLInputElement || event.target instanceof HTMLSelectElement) {
    return;
  }
  if (event.ctrlKey || event.metaKey || event.altKey) return;
  if (document.body.dataset.view === "insights") return; // the grid's keys act on the grid only
  const key = event.key;
  const detailOpen = state.open >= 0;
  if (key === "ArrowRight") move(1);
  else if (key === "ArrowLeft") move(-1);
  else if (key === "ArrowDown" && !detailOpen) move(columns());
  else if (key === "ArrowUp" && !detailOpen) move(-columns());
  else if (key === "Enter" && !detailOpen && state.focus >= 0) openDetail(state.focus);
  else if (key === "Escape" && detailOpen) closeDetail();
  else if (key === "Escape" && selectionCount()) selectNone();
  else if (/^[0-5]$/.test(key)) rate({ stars: Number(key) });
  else if (key === "x") rate({ reject: true });
  else if (key === "p") rate({ pick: true });
  else return;
  event.preventDefault();
});

// ---- start ----------------------------------------------------------------------------------

document.addEventListener("DOMContentLoaded", () => {
  $("search").addEventListener("submit", (event) => {
    event.preventDefault();
    const found = parseSearch($("q").value);
    $("q").value = "";
    for (const f of found) {
      if (!state.filters.some((o) => o.param === f.param && o.value === f.value)) {
        state.filters.push(f);
      }
    }
    refresh();
  });
  $("sort").addEventListener("change", refresh);
  $("rated").addEventListener("change", refresh);
  $("scroller").addEventListener("scroll", () => requestAnimationFrame(layout), { passive: true });
  window.addEventListener("resize", () => layout());
  $("close").addEventListener("click", closeDetail);
  $("prev").addEventListener("click", () => move(-1));
  $("next").addEventListener("click", () => move(1));
  $("show-news").addEventListener("click", refresh);
  $("select-all").addEventListener("click", selectAllMatching);
  $("select-none").addEventListener("click", selectNone);
  $("rate-selection").addEventListener("click", rateSelection);
  $("copy-paths").addEventListener("click", copyPaths);
  $("export-prompts").addEventListener("click", () => downloadWildcards("prompts"));
  $("export-tokens").addEventListener("click", () => downloadWildcards("tokens"));
  setInterval(pollNews, POLL_MS);
  // /library?folder=...&model=... opens with those filters (the rating page links here so);
  // ?token= is the server's access token in remote mode, never a filter.
  for (const [key, value] of new URLSearchParams(location.search)) {
    const known = Object.values(PREFIXES).find(([param]) => param === key);
    if (known && value) state.filters.push({ param: key, value, label: known[1] });
    // The filters of an insights bar (see insights.js): value=DIMENSION:VALUE, has_rating=KIND.
    if ((key === "value" || key === "has_rating") && value) {
      state.filters.push({ param: key, value, label: key === "value" ? "" : "rated" });
    }
  }
  refresh();
});
