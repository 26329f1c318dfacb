// The constitution's part of an answer, for the chat page: the notice shown when it replaced
// or refused an answer, and the "Constitution" section of the details panel, in plain words.
// The wording mirrors `charter trace` (src/charter/constitution/trace.py, `describe`), so an
// operator and a user read the same sentences. Every string from the server (names,
// principle ids, critique and revision text) enters the page through textContent only.

/** The decision in words, as trace.py's DECISIONS says it. */
export const DECISIONS = {
  pass: "passed: the answer was sent as the model wrote it",
  refused: "refused: the answer was replaced by the constitution's refusal",
  revised: "revised: the answer was replaced by the model's revision, which passed",
  ungoverned: "ungoverned: governance was off for this answer",
};

const SHORT_DECISIONS = {
  pass: "passed",
  refused: "refused",
  revised: "revised",
  ungoverned: "ungoverned",
};

const STAGE_TIMES = [
  ["input_screen", "input screen"],
  ["output_screen", "output screen"],
  ["critique", "critique"],
  ["revision", "revision"],
  ["revision_screen", "revision screen"],
];

const isObject = (v) => v !== null && typeof v === "object" && !Array.isArray(v);
const list = (v) => (Array.isArray(v) ? v : []);

function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

function ms(value) {
  const n = Number(value);
  if (!Number.isFinite(n)) return "? ms";
  return `${n.toLocaleString("en-US", { maximumFractionDigits: n < 100 ? 1 : 0 })} ms`;
}

const score = (p) => (Number.isFinite(Number(p)) ? Number(p).toFixed(2) : "?");

/** The one-word decision for the details summary line, or null when there is no trace. */
export function decisionWord(trace) {
  if (!isObject(trace)) return null;
  return SHORT_DECISIONS[trace.decision] || String(trace.decision ?? "?");
}

/** The principle an answer was refused or revised under (the first that fired). */
export function firedPrinciple(trace) {
  const first = isObject(trace) ? list(trace.fired).find(isObject) : null;
  return first && first.principle != null ? String(first.principle) : null;
}

/**
 * The notice over an answer the constitution changed, or null when it passed as written.
 * @param {object|null} trace `charter.trace`, when the answer is finished
 * @param {string|null} replacedBy the principle of a `charter.replace` event seen while
 *   streaming (the trace is not there yet when the swap happens)
 */
export function noticeText(trace, replacedBy = null) {
  const decision = isObject(trace) ? trace.decision : null;
  const principle = firedPrinciple(trace) ?? replacedBy;
  const under = principle ? ` (principle: ${principle})` : "";
  const first = isObject(trace) ? list(trace.fired).find(isObject) : null;
  const onInput = first && first.stage === "input" && replacedBy === null;
  if (decision === "revised") {
    return onInput
      ? `Revised under the constitution${under}`
      : `Replaced by the constitution with a revised answer${under}`;
  }
  if (decision === "refused") {
    return onInput ? `Refused by the constitution${under}` : `Replaced by the constitution${under}`;
  }
  if (replacedBy !== null && decision === null) return `Replaced by the constitution${under}`;
  return null;
}

/**
 * The "Constitution" section of a details panel.
 * @param {object|null|undefined} trace `charter.trace`; absent when no constitution governed
 * @returns {HTMLElement}
 */
export function governanceSection(trace) {
  const section = el("section", "governance");
  section.dataset.testid = "governance";
  section.setAttribute("aria-label", "Constitution");
  section.append(el("p", "governance-title", "Constitution"));
  if (!isObject(trace)) {
    const none = el("p", "governance-none muted", "No constitution governed this answer.");
    none.dataset.testid = "governance-none";
    section.append(none);
    return section;
  }

  const decision = String(trace.decision ?? "?");
  const verdict = el("p", `governance-decision ${SHORT_DECISIONS[decision] || "other"}`);
  verdict.dataset.testid = "governance-decision";
  verdict.dataset.decision = decision;
  verdict.append(el("strong", "", "Decision: "), DECISIONS[decision] || decision);
  section.append(verdict);

  const facts = el("dl", "governance-facts");
  const row = (label, testid, ...content) => {
    const dt = el("dt", "", label);
    const dd = el("dd");
    dd.dataset.testid = testid;
    dd.append(...content);
    facts.append(dt, dd);
    return dd;
  };

  const c = isObject(trace.constitution) ? trace.constitution : {};
  const hash = c.hash == null ? "?" : String(c.hash).slice(0, 12);
  row(
    "Constitution",
    "governance-constitution",
    `${c.name ?? "?"} ${c.version ?? ""}`.trim() + ` (hash ${hash}), mode ${trace.mode ?? "?"}`,
  );

  const thresholds = isObject(trace.thresholds) ? trace.thresholds : {};
  const times = isObject(trace.ms) ? trace.ms : {};
  const input = isObject(trace.input) ? trace.input : null;
  if (input) {
    const fired = list(input.fired).map(String);
    const what = fired.length ? `fired ${fired.join(", ")}` : "nothing fired";
    const dd = row(
      "Input screen",
      "governance-input",
      `${what} (${ms(times.input_screen ?? input.ms)})`,
    );
    dd.append(scoreList(input.scores, thresholds, new Set(fired)));
    if (isObject(input.views) && Object.keys(input.views).length) {
      const seen = Object.entries(input.views).map(([pid, v]) => `${pid} via ${v}`);
      dd.append(el("p", "governance-note", `Seen through: ${seen.join(", ")}`));
    }
    if (isObject(input.judged) && Object.keys(input.judged).length) {
      dd.append(el("p", "governance-note", `Escalated to the judge: ${judged(input.judged)}`));
    }
  }

  const output = isObject(trace.output) ? trace.output : null;
  if (output) {
    const checks = Number(output.checks) || 0;
    const at = output.fired_at_tokens;
    const what = at ? `fired after ${at} tokens` : "nothing fired";
    const dd = row(
      "Output screen",
      "governance-output",
      `${checks} check${checks === 1 ? "" : "s"}, ${ms(output.ms)}: ${what}`,
    );
    const outFired = new Set(
      list(trace.fired).filter((f) => isObject(f) && f.stage === "output").map((f) => f.principle),
    );
    dd.append(scoreList(output.scores, thresholds, outFired));
    if (isObject(output.judged) && Object.keys(output.judged).length) {
      dd.append(el("p", "governance-note", `Escalated to the judge: ${judged(output.judged)}`));
    }
  } else if (input && trace.mode !== "off") {
    row("Output screen", "governance-output", "not run: the request itself fired");
  }

  const fired = list(trace.fired).filter(isObject);
  if (fired.length) {
    const ul = el("ul", "governance-fired");
    for (const f of fired) {
      const at = f.at_tokens ? ` (after ${f.at_tokens} tokens)` : "";
      ul.append(el("li", "", `${f.principle} on the ${f.stage}${at}`));
    }
    row("Fired", "governance-fired", ul);
  }

  if (isObject(trace.critique)) {
    const crit = trace.critique;
    row(
      "Critique",
      "governance-critique",
      `under ${crit.principle} (${ms(times.critique)}):`,
      el("blockquote", "governance-quote", String(crit.text ?? "")),
    );
  }

  if (isObject(trace.revision)) {
    const rev = trace.revision;
    let why = "";
    if (list(rev.fired).length) why = ` (still fired: ${list(rev.fired).join(", ")})`;
    else if (rev.why) why = ` (${rev.why})`;
    const dd = row(
      "Revision",
      "governance-revision",
      `${rev.accepted ? "accepted" : "rejected"}${why} (${ms(times.revision)}):`,
      el("blockquote", "governance-quote", String(rev.text ?? "")),
    );
    dd.dataset.accepted = String(Boolean(rev.accepted));
  }

  const notScreened = list(trace.not_screened);
  if (notScreened.length) {
    row(
      "Not screened",
      "governance-not-screened",
      `${notScreened.join(", ")} (upheld by critique and training, not by a classifier)`,
    );
  }

  const spent = STAGE_TIMES.filter(([key]) => typeof times[key] === "number");
  if (spent.length) {
    const total = spent.reduce((sum, [key]) => sum + times[key], 0);
    const parts = spent.map(([key, label]) => `${label} ${ms(times[key])}`);
    row(
      "Time added",
      "governance-time",
      parts.join(" · ") + (spent.length > 1 ? ` (${ms(total)} in all)` : ""),
    );
  }

  section.append(facts);
  return section;
}

function judged(map) {
  return Object.entries(map)
    .map(([pid, p]) => `${pid} ${p === null ? "(no answer)" : score(p)}`)
    .join(", ");
}

/**
 * The three highest scores, each as a small bar with its threshold marked. The numbers are
 * also written out, so the bar is decoration (aria-hidden).
 */
function scoreList(scores, thresholds, fired) {
  const ranked = Object.entries(isObject(scores) ? scores : {})
    .filter(([, p]) => Number.isFinite(Number(p)))
    .sort((a, b) => Number(b[1]) - Number(a[1]))
    .slice(0, 3);
  const ul = el("ul", "score-list");
  ul.setAttribute("aria-label", "Highest scores");
  for (const [pid, p] of ranked) {
    const t = Number.isFinite(Number(thresholds[pid])) ? Number(thresholds[pid]) : 0.5;
    const li = el("li", "score-row");
    li.dataset.testid = "score";
    li.dataset.principle = pid;
    if (fired.has(pid) || Number(p) >= t) li.classList.add("over");
    const bar = el("span", "score-bar");
    bar.setAttribute("aria-hidden", "true");
    const fill = el("span", "score-fill");
    fill.style.width = `${Math.max(0, Math.min(1, Number(p))) * 100}%`;
    const mark = el("span", "score-threshold");
    mark.style.left = `${Math.max(0, Math.min(1, t)) * 100}%`;
    bar.append(fill, mark);
    li.append(
      el("span", "score-name", pid),
      bar,
      el("span", "score-value", `${score(p)} (threshold ${score(t)})`),
    );
    ul.append(li);
  }
  return ul;
}
