// Reverie look development: the browser side of the local UI (server: src/reverie/ui/server.py).
// Plain ES2020 with no build step and no external URLs, so it works offline on set.
"use strict";

const POLL_MS = 500;
const MIN_DRAG_PX = 4;
const CANVAS_MAX_W = 360;
const CANVAS_MAX_H = 480;
const COLOR_NOTES = {
  style: "style — the painting's colours",
  content: "content — keep the plate's colours",
  match: "match — the painting recoloured to the plate",
};
const FARM_NOTES = { local: "local — this machine", ray: "ray — the Ray cluster" };

const $ = (id) => document.getElementById(id);

const state = {
  options: null,
  content: null, // the plate: {id, name, width, height}
  style: null, // the painting: {id, name, width, height, picture} (picture: the decoded PNG for the canvas)
  crop: null, // [x, y, w, h] as 0-1 fractions of the painting, or null for the whole painting
  drag: null, // {start: [x, y]} while a crop is being dragged
  jobs: [], // the server's queue, newest first
  changes: 0, // bumped when this page adds a job, so a poll that started earlier cannot hide it
  mine: new Set(), // jobs this page created: they are watched before other tabs' jobs
  watched: { view: null, shot: null },
  shownVersion: -1, // image version of the watched preview/sweep now in #preview-image
  imageLoading: false,
  viewState: null, // the watched job's state, applied to #preview-image once its image has loaded
  playing: null, // the interval that plays the shot's frames in #shot-player, while it plays
  reported: new Set(), // own jobs whose end was already announced in #status
  pollError: null,
};

// ---- status line -------------------------------------------------------------------------------

function showStatus(message, isError = false) {
  const box = $("status");
  box.textContent = message;
  box.classList.toggle("error", isError);
}

const showError = (message) => showStatus(message, true);

function setText(element, text) {
  // Polls run twice a second: only touch the DOM when something changed.
  if (element.textContent !== text) element.textContent = text;
}

// ---- server requests ---------------------------------------------------------------------------

async function request(path, init = {}, as = "json") {
  let response;
  try {
    response = await fetch(path, init);
  } catch {
    throw new Error("cannot reach the Reverie server: is it still running?");
  }
  if (!response.ok) throw new Error(await errorText(response));
  return as === "text" ? response.text() : response.json();
}

async function errorText(response) {
  try {
    const body = await response.json();
    if (body && body.error) return body.error;
  } catch {
    // Not JSON (a proxy page, a crash): fall back to the status line below.
  }
  return `the server answered ${response.status} ${response.statusText}`.trim();
}

const getJSON = (path) => request(path);

function postJSON(path, body, as = "json") {
  const init = { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) };
  return request(path, init, as);
}

const postForm = (path, form) => request(path, { method: "POST", body: form });

const imageURL = (id) => `/api/images/${encodeURIComponent(id)}.png`;
const jobURL = (id, rest) => `/api/jobs/${encodeURIComponent(id)}/${rest}`;

// ---- options and the look ----------------------------------------------------------------------

async function loadOptions() {
  const options = await getJSON("/api/options");
  state.options = options;
  $("u").min = options.u_min;
  $("u").max = options.u_max;
  fillSelect($("color"), options.colors, COLOR_NOTES);
  fillSelect($("network"), options.networks, {});
  fillSelect($("shot-farm"), options.farms, FARM_NOTES);
  applyLook(options.defaults);
  const roots = options.roots || [];
  $("roots-hint").textContent = roots.length ? `server paths lie inside ${roots.join(", ")}` : "";
}

function fillSelect(select, values, notes) {
  select.replaceChildren(...values.map((value) => new Option(notes[value] || value, value)));
}

// Sets the controls from a look; returns notes about values the controls could not take as they were.
function applyLook(look) {
  const notes = [];
  if (look.u !== undefined) {
    $("u").value = Math.round(look.u); // the slider moves in whole steps
    if (Number($("u").value) !== Number(look.u)) notes.push(`u ${look.u} became ${$("u").value}`);
  }
  for (const key of ["iterations", "size", "color", "network", "seed"]) {
    if (look[key] === undefined) continue;
    $(key).value = look[key];
    if ($(key).value !== String(look[key])) notes.push(`${key} ${look[key]} is not offered here`);
  }
  setCrop(look.style_crop || null);
  updateULabel();
  return notes;
}

function readLook() {
  return {
    u: readWhole("u", "u"),
    iterations: readWhole("iterations", "iterations"),
    size: readWhole("size", "the working size"),
    color: $("color").value,
    network: $("network").value,
    seed: readWhole("seed", "the seed"),
    style_crop: state.crop,
  };
}

// A whole number within the input's own min/max, or an error that says what to type.
function readWhole(id, name) {
  const input = $(id);
  const value = Number(input.value);
  const min = input.min === "" ? -Infinity : Number(input.min);
  const max = input.max === "" ? Infinity : Number(input.max);
  if (input.value.trim() === "" || !Number.isSafeInteger(value) || value < min || value > max) {
    const range = input.max !== "" ? ` from ${min} to ${max}` : input.min !== "" ? ` of at least ${min}` : "";
    throw new Error(`${name} must be a whole number${range}`);
  }
  return value;
}

function updateULabel() {
  const u = Number($("u").value);
  const number = (value) => value.toLocaleString("en-US");
  const ratio = u >= 0 ? `${number(10 ** u)}:1` : `1:${number(10 ** -u)}`;
  $("u-label").textContent = `u = ${u} · style:content 10^${u} = ${ratio}`;
}

// ---- uploads -----------------------------------------------------------------------------------

// Sizes as the server words them: "40 MB", "64 KB" (a small limit never reads "0 MB").
function formatSize(bytes) {
  if (bytes < 1024) return `${bytes} bytes`;
  const [unit, scale] = bytes >= 1024 * 1024 ? ["MB", 1024 * 1024] : ["KB", 1024];
  return `${(bytes / scale).toFixed(1).replace(/\.0$/, "")} ${unit}`;
}

// The server checks again; this only spares a long upload that would be refused.
function checkUpload(file, mustBeImage) {
  const options = state.options || {};
  const limit = mustBeImage ? options.max_upload_bytes : options.max_look_bytes;
  if (limit && file.size > limit) {
    throw new Error(`${file.name} is ${formatSize(file.size)}, over the ${formatSize(limit)} limit: use a smaller file`);
  }
  // Some image types (EXR, DPX) have no MIME type in browsers: those are left to the server.
  if (mustBeImage && file.type && !file.type.startsWith("image/")) {
    throw new Error(`${file.name} is not an image: choose a PNG, JPEG, TIFF or EXR file`);
  }
}

async function uploadImage(input, role) {
  const file = input.files[0];
  if (!file) return null;
  try {
    checkUpload(file, true);
    const form = new FormData();
    form.append("file", file);
    form.append("role", role);
    showStatus(`uploading ${file.name}…`);
    return await postForm("/api/images", form);
  } catch (err) {
    input.value = ""; // so choosing the same file again after a fix fires "change"
    throw err;
  }
}

// ---- the plate ---------------------------------------------------------------------------------

async function onContentFile() {
  const image = await uploadImage($("content-file"), "content");
  if (image) setContent(image, `plate ${image.name} loaded`);
}

async function onFrameLoad() {
  const path = $("frame-path").value.trim();
  if (!path) throw new Error("type the path of a video or frame sequence on the server first");
  const frame = readWhole("frame-number", "the frame number");
  showStatus(`reading frame ${frame} of ${path}…`);
  const image = await postJSON("/api/frames", { path, frame });
  setContent(image, `frame ${frame} of ${path} loaded as the plate`);
}

function setContent(image, message) {
  state.content = image;
  const thumb = $("content-thumb");
  thumb.src = imageURL(image.id);
  thumb.hidden = false;
  $("content-size").textContent = `${image.width} × ${image.height} px · ${image.name}`;
  showStatus(message);
}

// ---- the painting and its crop -----------------------------------------------------------------

async function onStyleFile() {
  const image = await uploadImage($("style-file"), "style");
  if (!image) return;
  const picture = await loadPicture(imageURL(image.id));
  state.style = { ...image, picture };
  const scale = Math.min(1, CANVAS_MAX_W / picture.naturalWidth, CANVAS_MAX_H / picture.naturalHeight);
  $("style-canvas").width = Math.round(picture.naturalWidth * scale);
  $("style-canvas").height = Math.round(picture.naturalHeight * scale);
  drawStyle(state.crop); // a crop loaded from a look file stays until cleared
  $("style-size").textContent = `${image.width} × ${image.height} px · ${image.name}`;
  showStatus(`painting ${image.name} loaded: drag on it to use only part of it`);
}

function loadPicture(url) {
  return new Promise((resolve, reject) => {
    const picture = new Image();
    picture.onload = () => resolve(picture);
    picture.onerror = () => reject(new Error("the painting was uploaded but the page could not show it"));
    picture.src = url;
  });
}

// Draws the painting with `box` (fractions) outlined and the rest dimmed.
function drawStyle(box) {
  const canvas = $("style-canvas");
  const ctx = canvas.getContext("2d");
  const { width: w, height: h } = canvas;
  ctx.clearRect(0, 0, w, h);
  if (!state.style) {
    ctx.fillStyle = "#6f6a60";
    ctx.font = "13px system-ui, sans-serif";
    ctx.textAlign = "center";
    ctx.fillText("upload a painting to crop it here", w / 2, h / 2);
    return;
  }
  ctx.drawImage(state.style.picture, 0, 0, w, h);
  if (!box) return;
  const [x, y, bw, bh] = [box[0] * w, box[1] * h, box[2] * w, box[3] * h];
  ctx.fillStyle = "rgba(0, 0, 0, 0.55)";
  ctx.beginPath();
  ctx.rect(0, 0, w, h);
  ctx.rect(x, y, bw, bh);
  ctx.fill("evenodd");
  ctx.strokeStyle = "#e8b04f";
  ctx.lineWidth = 2;
  ctx.strokeRect(x, y, bw, bh);
}

function setCrop(crop) {
  state.crop = crop;
  const pct = (value) => `${Math.round(value * 100)}%`;
  $("crop-label").textContent = crop
    ? `crop: ${pct(crop[0])}, ${pct(crop[1])}, ${pct(crop[2])} × ${pct(crop[3])}`
    : "crop: whole painting";
  drawStyle(crop);
}

function pointerFraction(event) {
  const rect = $("style-canvas").getBoundingClientRect();
  const clamp = (value) => Math.min(1, Math.max(0, value));
  return [clamp((event.clientX - rect.left) / rect.width), clamp((event.clientY - rect.top) / rect.height)];
}

function dragBox(event) {
  const [x0, y0] = state.drag.start;
  const [x1, y1] = pointerFraction(event);
  return [Math.min(x0, x1), Math.min(y0, y1), Math.abs(x1 - x0), Math.abs(y1 - y0)];
}

function onCropStart(event) {
  if (!state.style) {
    showError("upload a painting first, then drag on it to crop");
    return;
  }
  state.drag = { start: pointerFraction(event) };
  // Capture keeps the drag alive when the pointer leaves the canvas.
  $("style-canvas").setPointerCapture(event.pointerId);
}

function onCropMove(event) {
  if (state.drag) drawStyle(dragBox(event));
}

function onCropEnd(event) {
  if (!state.drag) return;
  const box = dragBox(event);
  state.drag = null;
  // Measured in screen pixels of the clamped box, so a drag off the edge counts only what is inside.
  const rect = $("style-canvas").getBoundingClientRect();
  if (box[2] * rect.width < MIN_DRAG_PX || box[3] * rect.height < MIN_DRAG_PX) {
    drawStyle(state.crop);
    showError("the crop is too small: drag a larger box");
    return;
  }
  setCrop(box.map((value) => Math.round(value * 10000) / 10000));
  showStatus(`style ${$("crop-label").textContent}`);
}

function onCropClear() {
  setCrop(null);
  showStatus("crop cleared: the whole painting is the style");
}

function onCropCancel() {
  state.drag = null;
  drawStyle(state.crop);
}

// ---- jobs: preview, sweep, shot, stop ----------------------------------------------------------

function requireImages(needPlate) {
  if (needPlate && !state.content) throw new Error("load a plate first: upload a content image or load a frame");
  if (!state.style) throw new Error("load a painting first: upload a style image");
}

async function onPreview() {
  requireImages(true);
  await submitViewJob("/api/previews", { content: state.content.id, style: state.style.id, look: readLook() });
}

async function onSweep() {
  requireImages(true);
  const body = { content: state.content.id, style: state.style.id, look: readLook(), u_values: readSweepValues() };
  await submitViewJob("/api/sweeps", body);
}

async function submitViewJob(path, body) {
  // Until the new job is known, the picture on screen must not read as its result ("done").
  $("preview-image").dataset.state = "queued";
  const { job } = await postJSON(path, body);
  adopt(job, `queued ${job.label}`);
}

function readSweepValues() {
  const values = $("sweep-values").value.split(",").map((part) => part.trim()).filter(Boolean).map(Number);
  if (!values.length || values.some((value) => !Number.isFinite(value))) {
    throw new Error("the sweep values must be numbers separated by commas, e.g. 2,3,4,5,6");
  }
  const [min, max] = [Number($("u").min), Number($("u").max)];
  if (values.some((value) => value < min || value > max)) {
    throw new Error(`the sweep values must lie between ${min} and ${max}`);
  }
  return values;
}

function shotRequest() {
  requireImages(false);
  const input = $("shot-input").value.trim();
  const output = $("shot-output").value.trim();
  if (!input) throw new Error("type the shot to render: a video file or frame sequence path on the server");
  if (!output) throw new Error("type where to write the shot: an output path on the server");
  return {
    input,
    output,
    frames: $("shot-frames").value.trim(),
    style: state.style.id,
    look: readLook(),
    farm: $("shot-farm").value,
    workers: readWhole("shot-workers", "workers"),
  };
}

async function onShotRender() {
  const { job } = await postJSON("/api/shots", shotRequest());
  adopt(job, `queued ${job.label}`);
}

// Fast mode: keyframes painted by the look, a network trained on them, every frame painted by it.
async function onShotFast() {
  const body = { ...shotRequest(), fast: true };
  if ($("shot-train-steps").value.trim()) body.train_steps = readWhole("shot-train-steps", "training steps");
  const { job } = await postJSON("/api/shots", body);
  adopt(job, `queued ${job.label}`);
}

// Plays the finished frames' thumbnails in order, at 24 frames a second, until pressed again.
function onShotPlay() {
  const player = $("shot-player");
  if (state.playing) {
    clearInterval(state.playing);
    state.playing = null;
    $("shot-play").textContent = "Play";
    return;
  }
  let index = 0;
  player.hidden = false;
  $("shot-play").textContent = "Pause";
  state.playing = setInterval(() => {
    const frames = [...$("shot-frames-view").querySelectorAll("img")];
    if (!frames.length) return;
    index %= frames.length;
    player.src = frames[index].src;
    player.alt = frames[index].alt;
    index += 1;
  }, 1000 / 24);
}

const SHOT_KINDS = ["shot", "fast"];
const FAST_STAGES = ["keyframes", "training", "frames"];

// One bar across a fast job's three stages; a plain shot's bar counts frames.
function shotProgress(job) {
  const frames = `${job.frames_done || 0} / ${job.frames_total || 0} frames`;
  if (job.kind !== "fast") return { done: job.frames_done || 0, total: Math.max(job.frames_total || 0, 1), text: frames };
  const stage = Math.max(FAST_STAGES.indexOf(job.stage), 0);
  const within = job.stage === "training"
    ? (job.iteration || 0) / Math.max(job.total || 0, 1)
    : (job.frames_done || 0) / Math.max(job.frames_total || 0, 1);
  const text = job.stage === "training" ? job.detail : `${job.stage || "starting"}: ${frames}`;
  return { done: Math.round(1000 * (stage + Math.min(within, 1))), total: 3000, text: text || job.stage };
}

// Shows a job this page just created at once, without waiting for the next poll.
function adopt(job, message) {
  state.mine.add(job.id);
  state.changes += 1;
  putJob(job);
  showStatus(message);
}

function putJob(job) {
  const known = state.jobs.some((other) => other.id === job.id);
  state.jobs = known ? state.jobs.map((other) => (other.id === job.id ? job : other)) : [job, ...state.jobs];
  render();
}

const isActive = (job) => job.state === "queued" || job.state === "running";

async function onStop() {
  const job = state.jobs.find((j) => state.mine.has(j.id) && !SHOT_KINDS.includes(j.kind) && isActive(j));
  if (!job) {
    showStatus("no preview or sweep of this page is queued or running");
    return;
  }
  await stopJob(job.id);
}

async function stopJob(id) {
  const { job } = await postJSON(jobURL(id, "stop"), {});
  state.changes += 1;
  putJob(job);
  showStatus(`stopping ${job.label}`);
}

// ---- polling and rendering ---------------------------------------------------------------------

async function poll() {
  const asked = state.changes;
  try {
    const { jobs } = await getJSON("/api/jobs");
    if (state.pollError) showStatus("connected to the Reverie server again");
    state.pollError = null;
    // A job added while this request was in flight may be missing from its answer: wait for the next.
    if (asked === state.changes) {
      state.jobs = jobs;
      render();
    }
  } catch (err) {
    if (err.message !== state.pollError) showError(err.message); // once per problem, not twice a second
    state.pollError = err.message;
  } finally {
    setTimeout(poll, POLL_MS);
  }
}

function render() {
  const view = pickWatched("view");
  const shot = pickWatched("shot");
  renderView(view);
  renderShot(shot);
  renderQueue(view, shot);
  announceEnds();
}

// Which job an area shows: this page's newest, else (a second tab) the newest running one, else the
// one already shown, else the newest.
function pickWatched(area) {
  const kinds = area === "shot" ? SHOT_KINDS : ["preview", "sweep"];
  const jobs = state.jobs.filter((job) => kinds.includes(job.kind));
  const byId = (id) => jobs.find((job) => job.id === id);
  return (
    jobs.find((job) => state.mine.has(job.id)) ||
    jobs.find((job) => job.state === "running") ||
    byId(state.watched[area]) ||
    jobs[0] ||
    null
  );
}

function renderView(job) {
  const image = $("preview-image");
  if (!job) {
    setText($("progress"), "no preview yet: load a plate and a painting, then press Preview");
    return;
  }
  if (job.id !== state.watched.view) {
    state.watched.view = job.id;
    state.shownVersion = -1;
  }
  state.viewState = job.state;
  if (job.version > 0 && job.version > state.shownVersion) {
    state.shownVersion = job.version;
    state.imageLoading = true; // data-state follows once this image is on screen (see onPreviewImage)
    image.src = `${jobURL(job.id, "image.png")}?v=${job.version}`;
    image.alt = job.label;
  }
  if (!state.imageLoading) image.dataset.state = job.state;
  image.dataset.job = job.id;
  const bar = $("progress-bar");
  bar.max = Math.max(job.total || 0, 1);
  bar.value = job.iteration || 0;
  const when = job.state === "running" ? "" : `${job.state} · `;
  const error = job.error ? ` · ${job.error}` : "";
  setText($("progress"), `${job.label} … ${when}iteration ${job.iteration || 0} / ${job.total || 0}${error}`);
}

function onPreviewImage() {
  state.imageLoading = false;
  if (state.viewState) $("preview-image").dataset.state = state.viewState;
}

function renderShot(job) {
  const view = $("shot-frames-view");
  if (!job) {
    setText($("shot-progress"), "no shot rendered yet");
    return;
  }
  if (job.id !== state.watched.shot) {
    state.watched.shot = job.id;
    view.replaceChildren();
  }
  const bar = $("shot-progress-bar");
  const progress = shotProgress(job);
  bar.max = progress.total;
  bar.value = progress.done;
  const error = job.error ? ` · ${job.error}` : "";
  setText($("shot-progress"), `${job.label} … ${job.state} · ${progress.text}${error}`);
  $("shot-play").disabled = !(job.frames || []).length;
  const shown = new Set([...view.children].map((el) => Number(el.dataset.frame)));
  for (const n of job.frames || []) if (!shown.has(n)) insertFrame(view, job.id, n);
}

// Frames can finish out of order on a farm: keep the thumbnails sorted by frame number.
function insertFrame(view, id, n) {
  const url = jobURL(id, `frames/${n}.png`);
  const link = Object.assign(document.createElement("a"), { href: url, target: "_blank", title: `frame ${n}` });
  link.dataset.frame = n;
  const thumb = Object.assign(document.createElement("img"), { src: url, alt: `frame ${n}`, loading: "lazy" });
  const caption = Object.assign(document.createElement("span"), { textContent: String(n) });
  link.append(thumb, caption);
  const after = [...view.children].find((el) => Number(el.dataset.frame) > n);
  view.insertBefore(link, after || null);
}

// Updates the list in place (keyed by job id) so a Stop button is never replaced under the pointer.
function renderQueue(view, shot) {
  const list = $("jobs");
  const items = new Map([...list.children].map((li) => [li.dataset.id, li]));
  state.jobs.forEach((job, index) => {
    const li = items.get(job.id) || newJobItem(job.id);
    items.delete(job.id);
    updateJobItem(li, job, job === view || job === shot);
    if (list.children[index] !== li) list.insertBefore(li, list.children[index] || null);
  });
  items.forEach((li) => li.remove());
}

function newJobItem(id) {
  const li = document.createElement("li");
  li.className = "job";
  li.dataset.id = id;
  for (const part of ["job-label", "job-state", "job-progress"]) {
    li.append(Object.assign(document.createElement("span"), { className: part }));
  }
  const stop = Object.assign(document.createElement("button"), { type: "button", className: "job-stop" });
  stop.textContent = "Stop";
  stop.addEventListener("click", guarded(() => stopJob(id)));
  li.append(stop);
  return li;
}

function updateJobItem(li, job, watched) {
  li.dataset.state = job.state;
  li.dataset.kind = job.kind;
  li.classList.toggle("mine", state.mine.has(job.id));
  li.classList.toggle("watched", watched);
  setText(li.querySelector(".job-label"), job.label);
  setText(li.querySelector(".job-state"), job.state);
  const progress = SHOT_KINDS.includes(job.kind)
    ? shotProgress(job).text
    : `${job.iteration || 0} / ${job.total || 0}`;
  setText(li.querySelector(".job-progress"), job.error ? `${progress} · ${job.error}` : progress);
  li.querySelector(".job-stop").hidden = !isActive(job);
}

// Tells the user once when one of this page's jobs ends (newest last, so it is the one left showing).
function announceEnds() {
  for (const job of [...state.jobs].reverse()) {
    if (!state.mine.has(job.id) || isActive(job) || state.reported.has(job.id)) continue;
    state.reported.add(job.id);
    if (job.state === "failed") showError(`${job.label} failed: ${job.error || "the server gave no reason"}`);
    else showStatus(`${job.label}: ${job.state}`);
  }
}

// ---- look files --------------------------------------------------------------------------------

async function onSaveLook() {
  const body = { look: readLook(), style_name: state.style ? state.style.name : null };
  const text = await postJSON("/api/looks/toml", body, "text");
  const url = URL.createObjectURL(new Blob([text], { type: "application/toml" }));
  const link = Object.assign(document.createElement("a"), { href: url, download: "look.toml" });
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10000); // revoking at once can cancel the download
  showStatus("look saved as look.toml");
}

async function onLookFile() {
  const input = $("look-file");
  const file = input.files[0];
  if (!file) return;
  input.value = ""; // so opening the same file again (after editing it) reloads it
  checkUpload(file, false);
  const form = new FormData();
  form.append("file", file);
  const { look } = await postForm("/api/looks/parse", form);
  const notes = applyLook(look);
  showStatus([`look loaded from ${file.name}`, ...notes].join("; "));
}

// ---- start -------------------------------------------------------------------------------------

// Every handler's error, from the page or the server, ends up as one line in #status.
function guarded(handler) {
  return async (event) => {
    try {
      await handler(event);
    } catch (err) {
      showError(err.message);
    }
  };
}

function wire() {
  const handlers = {
    "content-file": ["change", onContentFile],
    "frame-load": ["click", onFrameLoad],
    "style-file": ["change", onStyleFile],
    "crop-clear": ["click", onCropClear],
    u: ["input", updateULabel],
    preview: ["click", onPreview],
    stop: ["click", onStop],
    sweep: ["click", onSweep],
    "save-look": ["click", onSaveLook],
    "look-file": ["change", onLookFile],
    "shot-render": ["click", onShotRender],
    "shot-fast": ["click", onShotFast],
    "shot-play": ["click", onShotPlay],
  };
  for (const [id, [type, handler]] of Object.entries(handlers)) $(id).addEventListener(type, guarded(handler));
  const canvas = $("style-canvas");
  canvas.addEventListener("pointerdown", onCropStart);
  canvas.addEventListener("pointermove", onCropMove);
  canvas.addEventListener("pointerup", onCropEnd);
  canvas.addEventListener("pointercancel", onCropCancel);
  $("preview-image").addEventListener("load", onPreviewImage);
  $("preview-image").addEventListener("error", onPreviewImage);
}

async function start() {
  wire();
  setCrop(null);
  updateULabel();
  try {
    await loadOptions();
  } catch (err) {
    showError(`could not read the server's options: ${err.message}`);
  }
  poll();
}

start();
