// The demo page: two photos → the real face-match API → verdict, confidence, boxes.
// Plain JavaScript, no build step. The token comes from POST /demo/session (a demo
// organisation only); messages of refused photos are the API's own, in en or ar.
"use strict";

const TEXT = {
  en: {
    title: "Are they the same person?", language: "Language",
    intro: "Pick or take two photos: a selfie and an ID document. Each must show exactly one face.",
    first: "Selfie", second: "ID document", compare: "Compare", working: "Comparing…",
    confidence: "Confidence", trials: "Trials left on this token", api: "API documentation",
    same: "Same person", different: "Different people", missing: "Choose both photos first.",
    unreachable: "The server could not be reached.",
    first_img: "Selfie", second_img: "ID document",
  },
  ar: {
    title: "هل هما الشخص نفسه؟", language: "اللغة",
    intro: "اختر أو التقط صورتين: صورة شخصية وصورة وثيقة الهوية. يجب أن تُظهر كل صورة وجهًا واحدًا فقط.",
    first: "الصورة الشخصية", second: "وثيقة الهوية", compare: "قارن", working: "جارٍ المقارنة…",
    confidence: "درجة الثقة", trials: "المحاولات المتبقية لهذا الرمز", api: "توثيق الواجهة البرمجية",
    same: "الشخص نفسه", different: "شخصان مختلفان", missing: "اختر الصورتين أولًا.",
    unreachable: "تعذّر الوصول إلى الخادم.",
    first_img: "الصورة الشخصية", second_img: "وثيقة الهوية",
  },
};
const DEAD_TOKEN_CODES = new Set([1101, 1102, 1103, 1104]);

let lang = "en";
let session = null; // {access_token, bundle_key, trials_left, expires_at}

const $ = (id) => document.getElementById(id);
const t = (key) => TEXT[lang][key] || TEXT.en[key] || key;

function applyLanguage(value) {
  lang = value in TEXT ? value : "en";
  document.documentElement.lang = lang;
  document.documentElement.dir = lang === "ar" ? "rtl" : "ltr";
  for (const node of document.querySelectorAll("[data-text]")) node.textContent = t(node.dataset.text);
}

function readAsDataUrl(file) {
  return new Promise((resolve, reject) => {
    const reader = new FileReader();
    reader.onload = () => resolve(reader.result);
    reader.onerror = () => reject(reader.error);
    reader.readAsDataURL(file);
  });
}

async function postJson(path, body, token) {
  const headers = {"Content-Type": "application/json"};
  if (token) headers.Authorization = `Bearer ${token}`;
  const response = await fetch(path, {method: "POST", headers, body: JSON.stringify(body)});
  let data = null;
  try { data = await response.json(); } catch (_) { data = null; }
  return {status: response.status, data};
}

async function ensureSession() {
  const now = Date.now();
  if (session && session.trials_left > 0 && now < session.expires_at) return session;
  const {status, data} = await postJson("/demo/session", {});
  if (status !== 200) throw new Error(data && data.message ? data.message : t("unreachable"));
  session = {
    access_token: data.access_token,
    bundle_key: data.bundle_key,
    trials_left: data.trials,
    expires_at: now + (data.expires_in - 5) * 1000,
  };
  return session;
}

function clearBoxes() {
  for (const id of ["first-boxes", "second-boxes"]) {
    const canvas = $(id);
    canvas.getContext("2d").clearRect(0, 0, canvas.width, canvas.height);
  }
}

function drawBox(imageId, canvasId, box) {
  const image = $(imageId);
  const canvas = $(canvasId);
  if (!box || !image.naturalWidth) return;
  canvas.width = image.naturalWidth;
  canvas.height = image.naturalHeight;
  const context = canvas.getContext("2d");
  context.lineWidth = Math.max(2, Math.round(image.naturalWidth / 120));
  context.strokeStyle = "#e69138";
  context.strokeRect(box.left, box.top, box.right - box.left, box.bottom - box.top);
  canvas.dataset.boxes = "1";
}

function showRefusal(message) {
  $("result").hidden = true;
  const refusal = $("refusal");
  refusal.textContent = message;
  refusal.hidden = false;
}

async function match(first, second) {
  for (let attempt = 0; attempt < 2; attempt++) {
    const current = await ensureSession();
    current.trials_left -= 1; // counted before the call, never spent on a dead token
    const reply = await postJson("/api/v1/face/match/", {
      first_img: first, second_img: second, bundle_key: current.bundle_key, lang,
    }, current.access_token);
    const body = reply.data || {};
    if (typeof body.trials_remaining === "number") current.trials_left = body.trials_remaining;
    if (reply.status === 403 && DEAD_TOKEN_CODES.has(body.error_code) && attempt === 0) {
      session = null;
      continue;
    }
    return {reply, token: current.access_token};
  }
}

async function onSubmit(event) {
  event.preventDefault();
  const files = [$("first").files[0], $("second").files[0]];
  clearBoxes();
  $("refusal").hidden = true;
  if (!files[0] || !files[1]) { showRefusal(t("missing")); return; }
  const button = $("compare");
  button.disabled = true;
  button.textContent = t("working");
  try {
    const [first, second] = await Promise.all(files.map(readAsDataUrl));
    const {reply, token} = await match(first, second);
    const body = reply.data || {};
    if (reply.status !== 200) {
      const which = body.field && TEXT[lang][body.field] ? `${TEXT[lang][body.field]}: ` : "";
      showRefusal(which + (body.message || `HTTP ${reply.status}`));
      return;
    }
    const verdict = $("verdict");
    verdict.textContent = body.result.is_similar ? t("same") : t("different");
    verdict.className = body.result.is_similar ? "same" : "different";
    $("confidence").textContent = `${(body.result.confidence * 100).toFixed(2)}%`;
    $("trials").textContent = String(body.trials_remaining);
    $("result").hidden = false;
    const boxes = await postJson("/demo/boxes", {transaction_id: body.transaction_id}, token);
    if (boxes.status === 200) {
      drawBox("first-preview", "first-boxes", boxes.data.first);
      drawBox("second-preview", "second-boxes", boxes.data.second);
    }
  } catch (error) {
    showRefusal(error && error.message ? error.message : t("unreachable"));
  } finally {
    button.disabled = false;
    button.textContent = t("compare");
  }
}

function preview(inputId, imageId) {
  $(inputId).addEventListener("change", () => {
    const file = $(inputId).files[0];
    clearBoxes();
    const image = $(imageId);
    if (image.src) URL.revokeObjectURL(image.src);
    if (file) {
      image.src = URL.createObjectURL(file);
      image.alt = file.name;
    } else {
      image.removeAttribute("src");
    }
  });
}

document.addEventListener("DOMContentLoaded", () => {
  const select = $("lang");
  select.addEventListener("change", () => applyLanguage(select.value));
  applyLanguage(select.value);
  preview("first", "first-preview");
  preview("second", "second-preview");
  $("form").addEventListener("submit", onSubmit);
});
