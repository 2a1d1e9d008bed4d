// The dashboard's Live section: the microphone, sent to /v1/realtime as it is captured
// (32-bit floats at the browser's own rate; the server resamples), and the transcript as it
// grows: each final segment as a line, each word coloured by its speaker. Speaker updates
// recolour earlier words in place; after Stop, the result's speakers are the last word.
// Everything from the server is written as text, never parsed as HTML.
"use strict";

(() => {
  const $ = (id) => document.getElementById(id);
  let session = null;

  function state(kind, text) {
    $("live-state").dataset.state = kind;
    $("live-state").textContent = text;
  }

  function fail(text) {
    $("live-error").textContent = text;
    $("live-error").hidden = false;
    state("failed", "Stopped.");
  }

  /** Give a line (and its words) speakers: `speaker` for the line, `words` one per word. */
  function paint(line, speaker, words, final) {
    const { speakerColour } = window.whospoke;
    const who = line.querySelector(".speaker");
    who.textContent = speaker || "…";
    who.style.color = speakerColour(speaker);
    line.dataset.speaker = speaker || "";
    line.style.borderLeftColor = speakerColour(speaker);
    line.querySelectorAll(".word").forEach((span, i) => {
      const label = words.length ? words[i] || speaker : speaker;
      span.dataset.speaker = label || "";
      span.style.color = speakerColour(label);
      span.dataset.provisional = String(!final);
    });
    if (final) line.dataset.final = "true";
  }

  function addSegment(live) {
    const { el } = window.whospoke;
    const segment = live.segment;
    const words = segment.words.length ? segment.words : [{ text: " " + segment.text }];
    const line = el(
      "li",
      { "data-index": live.index },
      el("span", { class: "speaker" }),
      ...words.map((w) => el("span", { class: "word" }, w.text)),
    );
    paint(line, segment.speaker, segment.words.map((w) => w.speaker), false);
    $("live-lines").append(line);
  }

  function update(change) {
    const line = $("live-lines").querySelector(`li[data-index="${Number(change.index)}"]`);
    if (line) paint(line, change.speaker, change.word_speakers, change.final);
  }

  function onMessage(message) {
    const event = JSON.parse(message.data);
    if (event.error) fail(event.error.message + " (" + event.error.code + ")");
    else if (event.live_segment) addSegment(event.live_segment);
    else if (event.speaker_update) update(event.speaker_update);
    else if (event.warning) state($("live-state").dataset.state, "Warning: " + event.warning.message);
    else if (event.result) {
      $("live-lines").querySelectorAll("li").forEach((line) => {
        line.dataset.final = "true";
        line.querySelectorAll(".word").forEach((w) => (w.dataset.provisional = "false"));
      });
      state("done", "Done: " + event.result.speakers.length + " speaker(s).");
    }
  }

  function config(rate) {
    const options = {};
    const speakers = $("live-speakers").value.trim();
    const language = $("live-language").value.trim();
    if (speakers) options.num_speakers = Number(speakers);
    if (language) options.language = language;
    const first = { config: { encoding: "PCM_F32LE", sample_rate_hz: rate, channels: 1, options } };
    const token = window.whospoke.token();
    if (token) first.authorization = "Bearer " + token;
    return JSON.stringify(first);
  }

  function release() {
    if (!session) return;
    session.processor.disconnect();
    session.source.disconnect();
    session.stream.getTracks().forEach((track) => track.stop());
    session.context.close();
    $("live-start").disabled = false;
    $("live-stop").disabled = true;
  }

  async function start(event) {
    event.preventDefault();
    $("live-error").hidden = true;
    $("live-lines").replaceChildren();
    let stream;
    try {
      stream = await navigator.mediaDevices.getUserMedia({ audio: { channelCount: 1 } });
    } catch (error) {
      fail("No microphone: " + (error.message || error));
      return;
    }
    const context = new AudioContext();
    const source = context.createMediaStreamSource(stream);
    const processor = context.createScriptProcessor(4096, 1, 1);
    const scheme = location.protocol === "https:" ? "wss://" : "ws://";
    const socket = new WebSocket(scheme + location.host + "/v1/realtime");
    session = { stream, context, source, processor, socket };
    $("live-start").disabled = true;
    $("live-stop").disabled = false;
    socket.onopen = () => {
      socket.send(config(context.sampleRate));
      processor.onaudioprocess = (e) => {
        if (socket.readyState === WebSocket.OPEN && !session.ended) {
          socket.send(new Float32Array(e.inputBuffer.getChannelData(0)).buffer);
        }
      };
      source.connect(processor);
      processor.connect(context.destination);
      state("listening", "Listening…");
    };
    socket.onmessage = onMessage;
    socket.onclose = (e) => {
      release();
      if (e.code !== 1000 && $("live-state").dataset.state !== "failed") {
        fail("The connection closed (code " + e.code + ").");
      }
    };
  }

  function stop() {
    if (!session || session.ended) return;
    session.ended = true;
    session.socket.send(JSON.stringify({ end: true }));
    $("live-stop").disabled = true;
    state("finishing", "Finishing: the speakers of the whole stream come last…");
  }

  document.addEventListener("DOMContentLoaded", () => {
    $("live-form").addEventListener("submit", start);
    $("live-stop").addEventListener("click", stop);
  });
})();
