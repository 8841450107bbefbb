// The library's Insights view: per dimension, a chart of each value's mean rating against the
// baseline of the filtered selection, with its interval, drawn here as plain SVG from
// /api/insights. A click on a bar filters the grid to exactly the images the bar counted
// (the row's `filter` and `has_rating`). Shares state, params() and refresh() of library.js.
"use strict";

const DIMENSIONS = [
  ["token", "Prompt tokens"], ["lora", "LoRA @ weight"], ["checkpoint", "Checkpoints"],
  ["sampler", "Samplers"], ["scheduler", "Schedulers"], ["cfg", "CFG scale"],
  ["steps", "Steps"], ["generator", "Generators"], ["token+lora", "Token + LoRA"],
  ["lora+checkpoint", "LoRA + checkpoint"],
];
const FILTER_NAMES = {
  token: "token", lora: "LoRA", lora_name: "LoRA", checkpoint: "checkpoint",
  sampler: "sampler", scheduler: "scheduler", cfg: "CFG", steps: "steps", generator: "generator",
};
const KIND_NAMES = { ai: "AI rating", user: "my stars", pick: "pick or reject", any: "any rating" };
const SVG = "http://www.w3.org/2000/svg";
const ROW = 26; // px a value
const AXIS = 22; // px above the rows for the scale
const COUNT = 64; // px at the right for the image count

const insight = {
  generation: 0,
  asked: "", // the query of the charts shown, so a change of sort alone does not reload
  answers: new Map(), // dimension -> answer of /api/insights (kept to redraw on resize)
};

// ---- switching views ------------------------------------------------------------------------

function showView(view) {
  const insights = view === "insights";
  document.body.dataset.view = view;
  $("grid-view").hidden = insights;
  $("insights").hidden = !insights;
  for (const [id, on] of [["tab-images", !insights], ["tab-insights", insights]]) {
    $(id).setAttribute("aria-selected", String(on));
    $(id).tabIndex = on ? 0 : -1;
  }
  history.replaceState(null, "", insights ? "#insights" : location.pathname + location.search);
  if (insights) loadInsights();
  else layout();
}

function insightsShown() {
  return document.body.dataset.view === "insights";
}

// ---- loading --------------------------------------------------------------------------------

function insightParams(dimension) {
  return params({
    by: dimension,
    rating: $("insight-rating").value,
    min_images: String(Math.max(1, Number($("insight-min").value) || 20)),
    top: $("insight-top").value,
  });
}

async function loadInsights() {
  if (!insightsShown()) return;
  const asked = insightParams("").toString().replace(/(^|&)sort=[^&]*/, "");
  if (asked === insight.asked) return;
  insight.asked = asked;
  insight.generation += 1;
  const generation = insight.generation;
  insight.answers.clear();
  const box = $("charts");
  box.replaceChildren();
  const cards = new Map();
  for (const [dimension, title] of DIMENSIONS) {
    const card = el("section", "chart");
    card.dataset.dimension = dimension;
    card.append(el("h2", "", title), el("p", "chart-note", "Loading…"));
    cards.set(dimension, card);
    box.append(card);
  }
  $("insight-status").textContent = "Counting…";
  // One dimension a request, so the quick ones show while tokens and pairs are counted.
  for (const [dimension] of DIMENSIONS) {
    let answer;
    try {
      answer = await getJSON("/api/insights?" + insightParams(dimension));
    } catch (error) {
      if (generation !== insight.generation) return;
      $("insight-status").textContent = error.message;
      for (const card of cards.values()) card.remove();
      return;
    }
    if (generation !== insight.generation) return;
    insight.answers.set(dimension, answer);
    drawChart(cards.get(dimension), dimension, answer);
    const base = answer.baseline;
    $("insight-status").textContent =
      `Baseline: ${base.images.toLocaleString()} images with ${KIND_NAMES[answer.rating]},` +
      ` ${answer.measure} ${formatMeasure(base.mean, answer.rating)}`;
  }
}

function formatMeasure(value, rating) {
  return rating === "pick" ? `${Math.round(value * 100)} %` : value.toFixed(2);
}

// ---- drawing --------------------------------------------------------------------------------

function svg(tag, attributes, text) {
  const node = document.createElementNS(SVG, tag);
  for (const [key, value] of Object.entries(attributes || {})) node.setAttribute(key, value);
  if (text !== undefined) node.textContent = text;
  return node;
}

function shorten(text, chars) {
  return text.length <= chars ? text : text.slice(0, Math.max(1, chars - 1)) + "…";
}

// A value cut to `chars` characters so that what tells values apart stays: a LoRA's weight
// bin whole, and both parts of a pair (each cut to its share).
function label(row, chars) {
  const text = row.value;
  if (text.length <= chars) return text;
  if (row.filter.length === 2) {
    const [first, second] = row.filter.map((named) => named.slice(named.indexOf(":") + 1));
    const room = chars - 3;
    const firstRoom = Math.max(Math.ceil(room / 2), room - second.length);
    return shorten(first, firstRoom) + " + " + shorten(second, room - Math.min(first.length, firstRoom));
  }
  const at = text.lastIndexOf(" @ ");
  if (at > 0) {
    const bin = text.slice(at);
    return shorten(text.slice(0, at), Math.max(4, chars - bin.length)) + bin;
  }
  return shorten(text, chars);
}

// A tick every 0.05 to 2 units (at most 5 ticks); keep rates tick in whole percents.
function tickStep(low, high) {
  return [0.01, 0.02, 0.05, 0.1, 0.2, 0.25, 0.5, 1, 2].find((s) => (high - low) / s <= 5) || 5;
}

function niceTicks(low, high, step) {
  const ticks = [];
  for (let n = Math.ceil(low / step - 1e-9); n * step <= high + 1e-9; n++) ticks.push(n * step);
  return ticks;
}

function tickText(tick, step, pick) {
  if (pick) return `${Math.round(tick * 100)}%`;
  const decimals = step >= 1 ? 0 : step >= 0.1 && (step * 10) % 1 === 0 ? 1 : 2;
  return tick.toFixed(decimals);
}

function drawChart(card, dimension, answer) {
  const note = card.querySelector(".chart-note");
  const rows = answer.rows;
  const total = answer.values[dimension] || 0;
  note.textContent = !rows.length
    ? `No value on ${$("insight-min").value} or more rated images.`
    : rows.length < total
      ? `${total.toLocaleString()} values; the best and worst ${rows.length / 2} by lower bound`
      : `${total.toLocaleString()} value${total === 1 ? "" : "s"}, best lower bound first`;
  card.querySelector("svg")?.remove();
  if (!rows.length) return;

  const base = answer.baseline.mean;
  const pick = answer.rating === "pick";
  const width = Math.max(260, card.clientWidth - 24);
  const labelWidth = Math.min(420, Math.round(width * 0.42));
  const plotLeft = labelWidth + 8;
  const plotRight = width - COUNT;
  const gap = rows.length < total ? 1 : 0; // a row of "…" between the best and the worst
  const height = AXIS + (rows.length + gap) * ROW + 4;
  let low = Math.min(base, ...rows.map((r) => base + r.delta_low));
  let high = Math.max(base, ...rows.map((r) => base + r.delta_high));
  const pad = (high - low) * 0.06 || 0.1;
  low -= pad;
  high += pad;
  const x = (value) => plotLeft + ((value - low) / (high - low)) * (plotRight - plotLeft);

  const chart = svg("svg", {
    width, height, viewBox: `0 0 ${width} ${height}`, class: "bars",
    role: "group", "aria-label": card.querySelector("h2").textContent,
  });
  const step = tickStep(low, high);
  for (const tick of niceTicks(low, high, step)) {
    chart.append(
      svg("line", { x1: x(tick), x2: x(tick), y1: AXIS - 4, y2: height, class: "grid" }),
      svg("text", { x: x(tick), y: AXIS - 8, class: "tick" }, tickText(tick, step, pick)),
    );
  }
  chart.append(svg("text", { x: width - 4, y: AXIS - 8, class: "tick count-head" }, "images"));
  const chars = Math.floor(labelWidth / 7.2);
  rows.forEach((row, index) => {
    const at = index + (gap && index >= rows.length / 2 ? 1 : 0);
    chart.append(drawRow(row, at, { x, base, chars, width, labelWidth, plotLeft, pick, answer }));
  });
  if (gap) {
    chart.append(svg("text", { x: labelWidth, y: AXIS + (rows.length / 2) * ROW + ROW / 2 + 4, class: "label more" }, "…"));
  }
  chart.append(
    svg("line", { x1: x(base), x2: x(base), y1: AXIS - 4, y2: height, class: "baseline" }),
  );
  card.append(chart);
}

function drawRow(row, at, geometry) {
  const { x, base, chars, width, labelWidth, plotLeft, pick, answer } = geometry;
  const top = AXIS + at * ROW;
  const middle = top + ROW / 2;
  const mean = row.mean;
  const above = mean >= base;
  const measure = (value) => formatMeasure(value, answer.rating);
  const summary = `${row.value}: ${row.images.toLocaleString()} images, ${answer.measure}` +
    ` ${measure(mean)} (${row.delta >= 0 ? "+" : ""}${pick ? Math.round(row.delta * 100) + " points" : row.delta.toFixed(2)}` +
    ` against ${measure(base)}; interval ${measure(base + row.delta_low)} to ${measure(base + row.delta_high)})`;
  const group = svg("g", {
    class: "row " + (row.delta_low > 0 ? "up sure" : row.delta_high < 0 ? "down sure" : above ? "up" : "down"),
    tabindex: "0", role: "button", "aria-label": summary + ". Show these images.",
  });
  group.dataset.filter = JSON.stringify(row.filter);
  group.dataset.images = String(row.images);
  group.append(svg("title", {}, summary + "\nClick: show these images"));
  group.append(svg("rect", { x: 0, y: top + 1, width, height: ROW - 2, rx: 3, class: "hit" }));
  group.append(svg("text", { x: labelWidth, y: middle + 4, class: "label" }, label(row, chars)));
  const from = Math.min(x(base), x(mean));
  group.append(svg("rect", {
    x: from, y: top + 6, width: Math.max(1.5, Math.abs(x(mean) - x(base))), height: ROW - 12,
    class: "bar", rx: 2,
  }));
  const left = x(base + row.delta_low);
  const right = x(base + row.delta_high);
  group.append(
    svg("line", { x1: left, x2: right, y1: middle, y2: middle, class: "whisker" }),
    svg("line", { x1: left, x2: left, y1: middle - 5, y2: middle + 5, class: "whisker" }),
    svg("line", { x1: right, x2: right, y1: middle - 5, y2: middle + 5, class: "whisker" }),
    svg("circle", { cx: x(mean), cy: middle, r: 3, class: "dot" }),
    svg("text", { x: width - 4, y: middle + 4, class: "count" }, row.images.toLocaleString()),
  );
  if (plotLeft > labelWidth) group.classList.add("has-label");
  group.addEventListener("click", () => showImagesOf(row, answer.rating));
  group.addEventListener("keydown", (event) => {
    if (event.key === "Enter" || event.key === " ") {
      event.preventDefault();
      showImagesOf(row, answer.rating);
    } else if (event.key === "ArrowDown" || event.key === "ArrowUp") {
      event.preventDefault();
      const all = [...document.querySelectorAll("#charts g.row")];
      const next = all[all.indexOf(group) + (event.key === "ArrowDown" ? 1 : -1)];
      if (next) next.focus();
    }
  });
  return group;
}

// ---- a click on a bar: the grid of its images -----------------------------------------------

function showImagesOf(row, rating) {
  for (const named of row.filter) {
    const [dimension, ...rest] = named.split(":");
    const text = `${FILTER_NAMES[dimension] || dimension} = ${rest.join(":")}`;
    if (!state.filters.some((f) => f.param === "value" && f.value === named)) {
      state.filters.push({ param: "value", value: named, label: "", text });
    }
  }
  state.filters = state.filters.filter((f) => f.param !== "has_rating");
  state.filters.push({
    param: "has_rating", value: rating, label: "", text: `rated: ${KIND_NAMES[rating]}`,
  });
  showView("images");
  refresh();
}

// ---- start ----------------------------------------------------------------------------------

document.addEventListener("DOMContentLoaded", () => {
  $("tab-images").addEventListener("click", () => showView("images"));
  $("tab-insights").addEventListener("click", () => showView("insights"));
  for (const id of ["tab-images", "tab-insights"]) {
    $(id).addEventListener("keydown", (event) => {
      if (event.key !== "ArrowLeft" && event.key !== "ArrowRight") return;
      event.preventDefault();
      const other = id === "tab-images" ? "tab-insights" : "tab-images";
      $(other).focus();
      $(other).click();
    });
  }
  $("insight-controls").addEventListener("submit", (event) => event.preventDefault());
  for (const id of ["insight-rating", "insight-min", "insight-top"]) {
    // A change event also comes when the field loses focus later: reloads only what changed.
    $(id).addEventListener("change", () => loadInsights());
  }
  document.addEventListener("filters-changed", () => loadInsights());
  let resizing = 0;
  window.addEventListener("resize", () => {
    clearTimeout(resizing);
    resizing = setTimeout(() => {
      if (!insightsShown()) return;
      for (const card of document.querySelectorAll("#charts .chart")) {
        const answer = insight.answers.get(card.dataset.dimension);
        if (answer) drawChart(card, card.dataset.dimension, answer);
      }
    }, 150);
  });
  showView(location.hash === "#insights" ? "insights" : "images");
});
