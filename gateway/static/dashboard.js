// The whospoke dashboard: polls /status about once a second and streams transcriptions
// from /v1/audio/transcriptions. Plain JS, no build step, nothing loaded from elsewhere.
// Every piece of data is written as text (textContent, text nodes), never parsed as HTML,
// so a transcript or a file name can never become markup.
"use strict";

(() => {
  // Milliseconds between /status polls: 1000, or `?refresh=MS` (at least 200).
  const POLL_MS = Math.max(200, Number(new URLSearchParams(location.search).get("refresh")) || 1000);
  const TOKEN_KEY = "whospoke.token";
  const PALETTE = [
    "#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e",
    "#17becf", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22",
  ];
  const $ = (id) => document.getElementById(id);

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (value === undefined || value === null) continue;
      if (key === "class") node.className = value;
      else if (key.startsWith("data-")) node.setAttribute(key, String(value));
      else node[key] = value;
    }
    for (const child of children) {
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  /** localStorage, which a browser may refuse (private mode): then nothing is kept. */
  function storage(action) {
    try {
      return action(localStorage) || "";
    } catch {
      return "";
    }
  }

  const token = () => storage((s) => s.getItem(TOKEN_KEY));

  function authHeaders() {
    const t = token();
    return t ? { Authorization: "Bearer " + t } : {};
  }

  function seconds(value) {
    if (value === null || value === undefined) return "—";
    if (value < 60) return value.toFixed(1) + " s";
    const m = Math.floor(value / 60);
    return m + " min " + Math.round(value - m * 60) + " s";
  }

  const gib = (bytes) => (bytes / 1073741824).toFixed(1);
  const clock = (unix) => (unix ? new Date(unix * 1000).toLocaleTimeString() : "—");

  /** A stable colour per speaker label: SPEAKER_03 is always the fourth colour. */
  function speakerColour(label) {
    const number = /(\d+)$/.exec(label || "");
    let index;
    if (number) index = Number(number[1]);
    else {
      index = 0;
      for (const ch of label || "") index = (index * 31 + ch.charCodeAt(0)) >>> 0;
    }
    return PALETTE[index % PALETTE.length];
  }

  function speakerLine(speaker, text) {
    const who = el("span", { class: "speaker" }, speaker || "…");
    who.style.color = speakerColour(speaker);
    const line = el("li", { "data-speaker": speaker || "" }, who, " ", el("span", { class: "text" }, text));
    line.style.borderLeftColor = speakerColour(speaker);
    return line;
  }

  /** OpenAI's error JSON (or whatever came) as one readable sentence. */
  async function errorText(response) {
    const raw = await response.text();
    try {
      const body = JSON.parse(raw);
      if (body && body.error) return describeError(body.error, response.status);
    } catch {
      // not JSON: fall through
    }
    return "HTTP " + response.status + (raw ? ": " + raw.slice(0, 300) : "");
  }

  function describeError(error, status) {
    const tags = [status ? "HTTP " + status : "", error.code || error.type || "", error.param ? "field " + error.param : ""];
    const tag = tags.filter(Boolean).join(", ");
    return (error.message || "error") + (tag ? " (" + tag + ")" : "");
  }

  function deviceText(backend) {
    if (backend.gpu) {
      const g = backend.gpu;
      const name = g.name || "GPU " + g.index;
      const memory = g.memory_total_bytes ? ` · ${gib(g.memory_used_bytes)} / ${gib(g.memory_total_bytes)} GiB` : "";
      return `${name} · ${g.utilization_percent.toFixed(0)} %${memory}`;
    }
    if (!backend.device) return "—";
    return backend.device === "cpu" ? "CPU" : backend.device;
  }

  function renderServices(health) {
    const badge = $("health-status");
    badge.textContent = health.status;
    badge.dataset.status = health.status;
    const o = health.orchestrator;
    const rows = [
      el("tr", { "data-service": "orchestrator", "data-state": o.state },
        el("td", {}, "orchestrator"),
        el("td", {}, el("span", { class: "badge", "data-status": o.state }, o.state)),
        el("td", {}, "—"), el("td", {}, "—"),
        el("td", { class: "mono" }, o.address), el("td", {}, o.detail || "")),
    ];
    for (const b of health.backends) {
      rows.push(el("tr", { "data-service": b.name, "data-state": b.state },
        el("td", {}, b.name),
        el("td", {}, el("span", { class: "badge", "data-status": b.state }, b.state)),
        el("td", { class: "models" }, b.models.join(", ") || "—"),
        el("td", { class: "device" }, deviceText(b)),
        el("td", { class: "mono" }, b.address), el("td", {}, b.detail || "")));
    }
    $("services").tBodies[0].replaceChildren(...rows);
  }

  function jobTitle(item) {
    const what = item.filename || item.kind;
    return item.source === "job" ? `job ${item.id} · ${what}` : `${item.id} · ${what}`;
  }

  function renderJob(node, item) {
    node.dataset.state = item.state;
    node.dataset.percent = String(item.percent);
    node.querySelector(".title").textContent = jobTitle(item);
    const facts = [item.stage || item.state, item.percent.toFixed(0) + " %", item.segments + " segments"];
    if (item.audio_seconds) facts.push(seconds(item.audio_seconds) + " of audio");
    facts.push(seconds(item.processing_seconds) + " so far");
    node.querySelector(".facts").textContent = facts.join(" · ");
    const bar = node.querySelector(".bar");
    bar.setAttribute("aria-valuenow", String(item.percent));
    bar.firstChild.style.width = Math.max(0, Math.min(100, item.percent)) + "%";
    const lines = (item.lines || []).slice(-3).map((l) => speakerLine(l.speaker, l.text));
    node.querySelector(".lines").replaceChildren(...lines);
  }

  function newJob(item) {
    const bar = el("div", { class: "bar", role: "progressbar" }, el("div", { class: "fill" }));
    bar.setAttribute("aria-valuemin", "0");
    bar.setAttribute("aria-valuemax", "100");
    return el("div", { class: "job", "data-id": item.id, "data-source": item.source },
      el("div", { class: "title" }), bar, el("div", { class: "facts muted" }), el("ol", { class: "lines" }));
  }

  function renderRunning(items) {
    const box = $("running");
    const existing = new Map([...box.children].map((n) => [n.dataset.id, n]));
    const nodes = items.map((item) => {
      const node = existing.get(item.id) || newJob(item);
      renderJob(node, item);
      return node;
    });
    box.replaceChildren(...nodes);
  }

  function renderQueue(items) {
    $("queued").replaceChildren(...items.map((item) =>
      el("li", { "data-id": item.id }, `${jobTitle(item)} · position ${item.queue_position || "?"}`)));
    $("queue-empty").hidden = items.length > 0;
  }

  function renderCounts(status) {
    const o = status.orchestrator;
    const running = status.running.length;
    const queued = o ? o.jobs_queued + o.job_queue.queued : status.queued.length;
    $("running-count").textContent = String(running);
    $("queue-depth").textContent = String(queued);
    $("limits").textContent = o
      ? `at most ${o.max_concurrent_jobs} at once, ${o.max_queued_jobs} waiting · job store ${o.job_queue.store || "—"}`
      : "";
  }

  function renderRecent(items) {
    const rows = items.map((item) => el("tr", { "data-id": item.id, "data-state": item.state },
      el("td", { class: "mono" }, item.id),
      el("td", {}, item.state),
      el("td", {}, item.filename === undefined ? "hidden" : item.filename || "—"),
      el("td", {}, item.audio_seconds ? seconds(item.audio_seconds) : "—"),
      el("td", {}, seconds(item.processing_seconds)),
      el("td", { class: "rtf" }, item.real_time_factor === null ? "—" : item.real_time_factor.toFixed(2)),
      el("td", {}, clock(item.finished))));
    $("recent").tBodies[0].replaceChildren(...rows);
  }

  function svg(tag, attrs) {
    const node = document.createElementNS("http://www.w3.org/2000/svg", tag);
    for (const [key, value] of Object.entries(attrs)) node.setAttribute(key, String(value));
    return node;
  }

  function renderThroughput(throughput) {
    const chart = $("throughput");
    if (!throughput) {
      chart.replaceChildren();
      $("throughput-summary").textContent = "";
      return;
    }
    const buckets = throughput.buckets;
    const peak = Math.max(1, ...buckets.map((b) => b.audio_seconds));
    const width = 600 / buckets.length;
    const bars = buckets.map((b, i) => {
      const height = (b.audio_seconds / peak) * 120;
      const bar = svg("rect", { x: i * width + 1, y: 125 - height, width: width - 2, height, class: "tbar" });
      const title = svg("title", {});
      title.textContent = `${clock(b.start)}: ${seconds(b.audio_seconds)} of audio, ${b.count} finished`;
      bar.append(title);
      return bar;
    });
    const axis = svg("line", { x1: 0, y1: 125.5, x2: 600, y2: 125.5, class: "axis" });
    const label = svg("text", { x: 2, y: 12, class: "label" });
    label.textContent = `peak ${seconds(peak)} of audio per minute`;
    const hour = svg("text", { x: 2, y: 138, class: "label" });
    hour.textContent = "60 min ago";
    const now = svg("text", { x: 598, y: 138, class: "label end" });
    now.textContent = "now";
    chart.replaceChildren(axis, ...bars, label, hour, now);
    const rtf = throughput.real_time_factor === null ? "—" : throughput.real_time_factor.toFixed(2);
    $("throughput-summary").textContent =
      `${seconds(throughput.audio_seconds)} of audio in ${throughput.finished} finished · real-time factor ${rtf}`;
  }

  const VIEW_NOTES = {
    full: "Showing everything, job contents included.",
    redacted: "Job contents are hidden: enter a token the orchestrator accepts to see transcripts and file names.",
    health: "Only health is shown: enter a token the orchestrator accepts to see the work " +
      "(this gateway has no token of its own for an anonymous view).",
  };

  function render(status) {
    renderServices(status.health);
    renderRunning(status.running);
    renderQueue(status.queued);
    renderCounts(status);
    renderRecent(status.recent);
    renderThroughput(status.throughput);
    const note = $("view-note");
    note.dataset.view = status.view;
    note.textContent = VIEW_NOTES[status.view] || "";
    $("updated").textContent = "updated " + clock(status.time) + (status.detail ? " · " + status.detail : "");
  }

  let timer = null;

  async function poll() {
    clearTimeout(timer);
    const connection = $("connection");
    try {
      const response = await fetch("/status", { headers: authHeaders(), cache: "no-store" });
      if (!response.ok) throw new Error(await errorText(response));
      render(await response.json());
      connection.hidden = true;
    } catch (error) {
      connection.hidden = false;
      connection.textContent = "Cannot read /status: " + (error.message || error);
      const badge = $("health-status");
      badge.textContent = "unreachable";
      badge.dataset.status = "error";
    } finally {
      timer = setTimeout(poll, POLL_MS);
    }
  }

  function showToken() {
    $("token-state").textContent = token() ? "a token is set" : "no token";
  }

  function setupToken() {
    $("token-form").addEventListener("submit", (event) => {
      event.preventDefault();
      const value = $("token").value.trim();
      if (value) storage((s) => s.setItem(TOKEN_KEY, value));
      $("token").value = "";
      showToken();
      poll();
    });
    $("token-clear").addEventListener("click", () => {
      storage((s) => s.removeItem(TOKEN_KEY));
      showToken();
      poll();
    });
    showToken();
  }

  function uploadState(state, text) {
    const node = $("upload-state");
    node.dataset.state = state;
    node.textContent = text;
  }

  function uploadError(text) {
    const box = $("upload-error");
    box.hidden = false;
    box.textContent = text;
    uploadState("failed", "Failed.");
  }

  /** Server-Sent Events from a fetch body (EventSource cannot POST a file). */
  async function readEvents(body, onEvent) {
    const reader = body.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += value;
      let match;
      while ((match = /\r?\n\r?\n/.exec(buffer)) !== null) {
        const block = buffer.slice(0, match.index);
        buffer = buffer.slice(match.index + match[0].length);
        const data = block.split(/\r?\n/)
          .filter((line) => line.startsWith("data:"))
          .map((line) => line.slice(5).replace(/^ /, ""))
          .join("\n");
        if (data) onEvent(JSON.parse(data));
      }
    }
  }

  function onEvent(event) {
    if (event.error) {
      uploadError(describeError(event.error));
    } else if (event.type === "transcript.text.delta") {
      $("transcript-live").append(document.createTextNode(event.delta));
      uploadState("streaming", "Transcribing…");
    } else if (event.type === "transcript.text.segment") {
      $("transcript-lines").append(speakerLine(event.speaker, event.text));
    } else if (event.type === "transcript.text.done") {
      if (!$("transcript-live").textContent) $("transcript-live").textContent = event.text;
      uploadState("done", "Done.");
    }
  }

  function uploadForm(file) {
    const diarize = $("upload-diarize").checked;
    const form = new FormData();
    form.append("file", file, file.name);
    form.append("model", "whisper-1");
    form.append("response_format", diarize ? "diarized_json" : "json");
    form.append("stream", "true");
    form.append("diarize", diarize ? "true" : "false");
    const speakers = $("upload-speakers").value.trim();
    if (speakers && diarize) form.append("num_speakers", speakers);
    const language = $("upload-language").value.trim();
    if (language) form.append("language", language);
    return form;
  }

  async function transcribe(event) {
    event.preventDefault();
    const file = $("upload-file").files[0];
    $("upload-error").hidden = true;
    $("transcript-live").replaceChildren();
    $("transcript-lines").replaceChildren();
    if (!file) {
      uploadError("Choose a recording first.");
      return;
    }
    const button = $("upload-submit");
    button.disabled = true;
    uploadState("uploading", "Uploading " + file.name + "…");
    try {
      const response = await fetch("/v1/audio/transcriptions", {
        method: "POST", body: uploadForm(file), headers: authHeaders(),
      });
      if (!response.ok) {
        uploadError(await errorText(response));
        return;
      }
      uploadState("streaming", "Waiting for the first words…");
      await readEvents(response.body, onEvent);
      if ($("upload-state").dataset.state === "streaming") uploadError("The stream ended before the result.");
    } catch (error) {
      uploadError("Request failed: " + (error.message || error));
    } finally {
      button.disabled = false;
    }
  }

  // What the Live section (live.js) shares with this page.
  window.whospoke = { el, speakerColour, token };

  document.addEventListener("DOMContentLoaded", () => {
    setupToken();
    $("upload-form").addEventListener("submit", transcribe);
    poll();
  });
})();
