// The generation page: posts the form as JSON to generate/stream and shows each word as the
// server-sent events arrive. Text only ever goes in through textContent, never innerHTML,
// so a prompt such as <script> is shown, not run.
"use strict";

const $ = (id) => document.getElementById(id);
let controller = null;  // aborts the running request when Stop is pressed

function numberOrNull(value) {
  return value.trim() === "" ? null : Number(value);
}

function readForm() {
  return {
    prompt: $("prompt").value,
    max_new_tokens: Number($("max_new_tokens").value),  // max_seq_len is the old name
    temperature: Number($("temperature").value),
    top_k: Number($("top_k").value || 0),
    top_p: Number($("top_p").value || 1),
    seed: numberOrNull($("seed").value),
  };
}

function setBusy(busy) {
  $("spinner").hidden = !busy;
  $("generate").disabled = busy;
  $("stop").disabled = !busy;
}

function showError(message) {
  $("error").textContent = message;
  $("error").hidden = false;
}

// Surprise in bits, -log2 p: 0 is certain, 16 or more is very surprising.
function surpriseColour(bits) {
  const alpha = Math.min(bits / 16, 1) * 0.65;
  return `rgba(220, 40, 20, ${alpha.toFixed(3)})`;
}

// One generated word: `text` is the readable piece it adds (its space, its capital, glued
// punctuation), the same text plain mode shows; the space stays outside the coloured span.
function appendToken(text, surprisal) {
  const space = text.match(/^\s*/)[0];
  const span = document.createElement("span");
  span.className = "token";
  span.textContent = text.slice(space.length);
  span.title = `${surprisal.toFixed(1)} bits`;
  if ($("colour").checked) span.style.backgroundColor = surpriseColour(surprisal);
  $("output").append(space, span);
}

function showPrompt(prompt) {
  const output = $("output");
  output.textContent = "";
  const span = document.createElement("span");
  span.className = "prompt";
  span.textContent = prompt;
  output.appendChild(span);
}

function finish(data, prompt) {
  // Both views show prompt + continuation (= generated_text): plain as one text, coloured as the
  // final pieces (an apostrophe's spacing is only settled by the word after it).
  if ($("colour").checked) {
    showPrompt(prompt);
    data.pieces.forEach((piece, i) => appendToken(piece, data.surprisals[i]));
  } else {
    $("output").textContent = data.generated_text;
  }
  const how = { length: "reached the length", eos: "ended the text", time: "ran out of time" }[data.stopped] || data.stopped;
  $("info").textContent = `${data.tokens.length} words in ${data.seconds.toFixed(2)} s; ` +
    `${how}; seed ${data.seed}`;
}

function handleEvent(block, prompt) {
  let kind = "message";
  let data = "";
  for (const line of block.split("\n")) {
    if (line.startsWith("event:")) kind = line.slice(6).trim();
    else if (line.startsWith("data:")) data += line.slice(5).trim();
  }
  if (!data) return;
  const payload = JSON.parse(data);
  // `text` is the readable piece; servers before it sent `word` (cased) or only `token`.
  if (kind === "token") appendToken(payload.text ?? " " + (payload.word ?? payload.token), payload.surprisal);
  else if (kind === "done") finish(payload, prompt);
  else if (kind === "error") showError(payload.error);
}

async function errorMessage(response) {
  try {
    const body = await response.json();
    if (body && body.error) return body.error;
  } catch (e) { /* not JSON: fall through */ }
  return `the server answered ${response.status} ${response.statusText}`;
}

async function generate(event) {
  event.preventDefault();
  $("error").hidden = true;
  $("info").textContent = "";
  const request = readForm();
  showPrompt(request.prompt);
  controller = new AbortController();
  setBusy(true);
  try {
    const response = await fetch("generate/stream", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify(request),
      signal: controller.signal,
    });
    if (!response.ok) throw new Error(await errorMessage(response));
    const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = "";
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += value;
      let end;
      while ((end = buffer.indexOf("\n\n")) >= 0) {
        handleEvent(buffer.slice(0, end), request.prompt);
        buffer = buffer.slice(end + 2);
      }
    }
  } catch (err) {
    if (err.name === "AbortError") $("info").textContent = "stopped";
    else showError(`Generation failed: ${err.message}`);
  } finally {
    controller = null;
    setBusy(false);
  }
}

function bindSlider(id, digits) {
  const show = () => { $(id + "_value").textContent = Number($(id).value).toFixed(digits); };
  $(id).addEventListener("input", show);
  show();
}

// The server's limits are the page's: one cap for the length slider and the prompt.
function applyLimits(limits) {
  const length = $("max_new_tokens");
  length.max = limits.max_new_tokens;
  if (Number(length.min) > limits.max_new_tokens) length.min = 1;
  length.dispatchEvent(new Event("input"));  // the shown value follows if it was clamped
  $("prompt").maxLength = limits.max_prompt_chars;
}

async function showModel() {
  try {
    const health = await (await fetch("health")).json();
    applyLimits(health.limits);
    $("model-name").textContent = `Model: ${health.model} (${health.vocab_size} words).`;
  } catch (e) { /* the page still works without it */ }
}

document.addEventListener("DOMContentLoaded", () => {
  bindSlider("max_new_tokens", 0);
  bindSlider("temperature", 2);
  $("form").addEventListener("submit", generate);
  $("stop").addEventListener("click", () => { if (controller) controller.abort(); });
  showModel();
});
