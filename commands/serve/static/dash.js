// skillopt serve: live pages without reloads. Served from the package (no CDN); the page's
// Content-Security-Policy allows no other script.
//
// An element with data-poll="URL" polls that JSON every second. Inside it, each [data-k]
// element takes fields[k] of the answer as text (textContent: ledger text is never parsed as
// HTML) and each <progress> the answer's fraction. A run page's section also names its
// data-live fragment: when the run's event count changes, that server-rendered (escaped)
// fragment replaces #live. The runs list reloads when a run appears or goes.
"use strict";

const PERIOD_MS = 1000;

function fill(scope, answer) {
  for (const el of scope.querySelectorAll("[data-k]")) {
    const value = answer.fields ? answer.fields[el.dataset.k] : undefined;
    if (value !== undefined && el.textContent !== value) el.textContent = value;
  }
  if (answer.fraction !== null && answer.fraction !== undefined) {
    for (const bar of scope.querySelectorAll("progress")) bar.value = answer.fraction;
  }
}

async function getJson(url) {
  const response = await fetch(url, { cache: "no-store" });
  if (!response.ok) throw new Error(url + ": " + response.status);
  return response.json();
}

async function refreshLive(section) {
  const response = await fetch(section.dataset.live, { cache: "no-store" });
  if (!response.ok) return;
  const html = await response.text();
  const doc = new DOMParser().parseFromString(html, "text/html");
  const live = document.getElementById("live");
  // Nodes parsed so never run a script (and the policy allows none inline).
  if (live) live.replaceChildren(...doc.body.childNodes);
}

async function pollRun(section) {
  const answer = await getJson(section.dataset.poll);
  fill(section, answer);
  if (String(answer.events) !== section.dataset.events) {
    section.dataset.events = String(answer.events);
    await refreshLive(section);
  }
  section.dataset.done = answer.done ? "true" : "false";
  return !answer.done; // a finished run appends nothing more: stop polling
}

async function pollRuns(table) {
  const answer = await getJson(table.dataset.poll);
  const ids = answer.runs.map((r) => r.id).join(" ");
  if (ids !== table.dataset.runs) {
    location.reload();
    return false;
  }
  for (const run of answer.runs) {
    const row = table.querySelector('tr[data-run="' + CSS.escape(run.id) + '"]');
    if (row) fill(row, run);
  }
  return true;
}

function start(el, step) {
  const tick = async () => {
    let again = true;
    try {
      again = await step(el);
    } catch (err) {
      // The server may be restarting, or the run mid-write: try again on the next tick.
    }
    if (again) setTimeout(tick, PERIOD_MS);
  };
  setTimeout(tick, PERIOD_MS);
}

document.addEventListener("DOMContentLoaded", () => {
  for (const el of document.querySelectorAll("[data-poll]")) {
    start(el, el.dataset.live ? pollRun : pollRuns);
  }
});
