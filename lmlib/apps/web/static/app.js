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

function appendToken(word, surprisal) {
  const span = document.createElement("span");
  span.className = "token";
  span.textContent = word;
  span.title = `${surprisal.toFixed(1)} bits`;
  if ($("colour").checked) span.style.backgroundColor = surpriseColour(surprisal);
  $("output").append(" ", span);
}

function finish(data) {
  // Plain view: the readable (detokenized) text replaces the streamed words.
  if (!$("colour").checked) $("output").textContent = data.generated_text;
  const how = { length: "reached the length", eos: "ended the text", time: "ran out of time" }[data.stopped] || data.stopped;
  $("info").textContent = `${data.tokens.length} words in ${data.seconds.toFixed(2)} s; ` +
    `${how}; seed ${data.seed}`;
}

function handleEvent(block) {
  let kind = "message";
  let data = "";
  for (const line of block.split("\n")) {
    if (line.startsWith("event:")) kind = line.slice(6).trim();
    else if (line.startsWith("data:")) data += line.slice(5).trim();
  }
  if (!data) return;
  const payload = JSON.parse(data);
  // `word` is the token in its usual casing ("Darcy"); servers before casing sent only `token`.
  if (kind === "token") appendToken(payload.word ?? payload.token, payload.surprisal);
  else if (kind === "done") finish(payload);
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
  const output = $("output");
  output.textContent = "";
  const prompt = document.createElement("span");
  prompt.className = "prompt";
  prompt.textContent = request.prompt;
  output.appendChild(prompt);
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
        handleEvent(buffer.slice(0, end));
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
