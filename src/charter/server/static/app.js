// The chat page: a conversation list, answers streamed from /v1/chat/completions, a Stop
// button, and a details panel showing each answer's `charter` object. Model output is only
// ever rendered by markdown.js, which builds DOM nodes from text and never parses HTML.
// Answers from a document collection show their [n] marks as links to the cited passages.
// An answer the constitution replaced mid-stream is swapped for the governed text and marked
// with a notice; its details panel says in words what the constitution saw and decided.
// Under each finished answer, thumbs up / down and a better answer (feedback.js) are saved
// as this reviewer's label on it.

import { FeedbackControls } from "./feedback.js";
import { decisionWord, governanceSection, noticeText } from "./governance.js";
import { linkCitations, renderMarkdown } from "./markdown.js";
import { readEvents } from "./sse.js";

const KEY_STORAGE = "charter.apiKey";
// {page: {enabled, collection}, conversations: {id: {enabled, collection}}}
const RETRIEVAL_STORAGE = "charter.retrieval";
const NARROW = window.matchMedia("(max-width: 760px)");

const $ = (id) => document.getElementById(id);
const ui = {
  sidebar: $("sidebar"),
  toggleSidebar: $("toggle-sidebar"),
  newChat: $("new-chat"),
  list: $("conversation-list"),
  listEmpty: $("conversations-empty"),
  forgetKey: $("forget-key"),
  title: $("chat-title"),
  keyForm: $("api-key-form"),
  keyReason: $("api-key-reason"),
  keyInput: $("api-key-input"),
  error: $("error"),
  errorText: $("error-text"),
  errorDismiss: $("error-dismiss"),
  messages: $("messages"),
  emptyState: $("empty-state"),
  composer: $("composer"),
  prompt: $("prompt"),
  send: $("send"),
  stop: $("stop"),
  showConfidence: $("show-confidence"),
  useDocs: $("use-docs"),
  collectionPicker: $("collection-picker"),
  collectionsNote: $("collections-note"),
};

const state = {
  conversations: [],
  currentId: null,
  /** @type {{controller: AbortController, view: MessageView} | null} */
  streaming: null,
  // Each conversation load takes a number; a slower, older load must not paint over a newer one.
  loadSeq: 0,
  /** @type {{id: string, documents: number, chunks: number}[]} */
  collections: [],
  defaultCollection: null,
};

// ---------------------------------------------------------------------------------------------
// API

class ApiError extends Error {
  constructor(message, status = 0, code = null) {
    super(message);
    this.name = "ApiError";
    this.status = status;
    this.code = code;
  }
}

function storedKey() {
  try {
    return localStorage.getItem(KEY_STORAGE) || "";
  } catch {
    return "";
  }
}

/**
 * Call the API; resolve with the Response when it is 2xx.
 * Rejects with ApiError (carrying the server's `error.message`) or with the AbortError.
 */
async function api(path, { method = "GET", body, signal, accept = "application/json" } = {}) {
  const headers = { Accept: accept };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const key = storedKey();
  if (key) headers.Authorization = `Bearer ${key}`;
  let response;
  try {
    response = await fetch(path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      signal,
      cache: "no-store",
    });
  } catch (err) {
    if (err.name === "AbortError") throw err;
    throw new ApiError(`Cannot reach the Charter server (${err.message}).`);
  }
  if (!response.ok) throw await errorFrom(response);
  return response;
}

async function errorFrom(response) {
  let message = `The server answered ${response.status} ${response.statusText}`.trim() + ".";
  let code = null;
  try {
    const data = await response.json();
    if (data && data.error && data.error.message) {
      message = String(data.error.message);
      code = data.error.code ?? null;
    }
  } catch {
    // Not JSON (a proxy's error page, say): the status line is the best we have.
  }
  const retryAfter = response.headers.get("Retry-After");
  if (response.status === 429 && retryAfter) {
    const seconds = Number(retryAfter);
    message += Number.isFinite(seconds)
      ? ` Try again in ${Math.ceil(seconds)} s.`
      : ` Try again after ${retryAfter}.`;
  }
  if (response.status === 401) askForKey(message);
  return new ApiError(message, response.status, code);
}

async function getJSON(path, options) {
  return (await api(path, options)).json();
}

const conversationPath = (id) => `v1/conversations/${encodeURIComponent(id)}`;

// ---------------------------------------------------------------------------------------------
// Errors and the API key

function showError(message) {
  ui.errorText.textContent = message;
  ui.error.hidden = false;
}

function hideError() {
  ui.error.hidden = true;
  ui.errorText.textContent = "";
}

/** Show what went wrong; a 401 is answered by the key form instead of a banner. */
function report(err) {
  if (err && err.name === "AbortError") return;
  if (err instanceof ApiError && err.status === 401) return;
  console.error(err);
  showError(err instanceof ApiError ? err.message : `Something went wrong in the page: ${err}`);
}

function askForKey(serverMessage) {
  ui.keyReason.textContent = storedKey()
    ? `The saved API key was not accepted (${serverMessage}). Enter another one.`
    : "This server needs an API key.";
  ui.keyForm.hidden = false;
  ui.keyInput.focus();
}

function saveKey(event) {
  event.preventDefault();
  const key = ui.keyInput.value.trim();
  if (!key) return;
  try {
    localStorage.setItem(KEY_STORAGE, key);
  } catch {
    showError("This browser does not allow saving the key (localStorage is blocked).");
    return;
  }
  ui.keyInput.value = "";
  ui.keyForm.hidden = true;
  ui.forgetKey.hidden = false;
  hideError();
  loadConversations();
  loadCollections();
  route();
}

function forgetKey() {
  localStorage.removeItem(KEY_STORAGE);
  ui.forgetKey.hidden = true;
}

// ---------------------------------------------------------------------------------------------
// Conversation list

async function loadConversations() {
  try {
    const page = await getJSON("v1/conversations");
    state.conversations = Array.isArray(page.data) ? page.data : [];
    // A title being edited is left alone; finishing the edit redraws the list.
    if (!ui.list.querySelector(".rename-form")) renderConversations();
  } catch (err) {
    report(err);
  }
}

function renderConversations() {
  ui.list.replaceChildren(...state.conversations.map(conversationItem));
  ui.listEmpty.hidden = state.conversations.length > 0;
}

const titleOf = (conversation) => (conversation && conversation.title) || "Untitled";

function conversationItem(conversation) {
  const li = document.createElement("li");
  li.className = "conversation";
  li.dataset.testid = "conversation-item";
  li.dataset.id = conversation.id;
  const current = conversation.id === state.currentId;
  li.classList.toggle("current", current);

  const open = document.createElement("a");
  open.className = "conversation-open";
  open.dataset.testid = "conversation-open";
  open.href = `#c/${encodeURIComponent(conversation.id)}`;
  open.textContent = titleOf(conversation);
  open.title = titleOf(conversation);
  if (current) open.setAttribute("aria-current", "page");
  // Opening the conversation that is already shown reloads it (the hash would not change).
  open.addEventListener("click", (event) => {
    if (location.hash === open.hash) {
      event.preventDefault();
      route();
    }
  });

  const rename = iconButton("✎", `Rename “${titleOf(conversation)}”`, "conversation-rename");
  rename.addEventListener("click", () => startRename(li, conversation));
  const remove = iconButton("✕", `Delete “${titleOf(conversation)}”`, "conversation-delete");
  remove.addEventListener("click", () => deleteConversation(conversation));

  const actions = document.createElement("span");
  actions.className = "conversation-actions";
  actions.append(rename, remove);
  li.append(open, actions);
  return li;
}

function iconButton(symbol, label, testid) {
  const button = document.createElement("button");
  button.type = "button";
  button.className = "icon-button";
  button.dataset.testid = testid;
  button.setAttribute("aria-label", label);
  button.title = label;
  const glyph = document.createElement("span");
  glyph.setAttribute("aria-hidden", "true");
  glyph.textContent = symbol;
  button.append(glyph);
  return button;
}

function startRename(li, conversation) {
  const form = document.createElement("form");
  form.className = "rename-form";
  const inputId = `rename-${conversation.id}`;
  const label = document.createElement("label");
  label.className = "visually-hidden";
  label.htmlFor = inputId;
  label.textContent = "Conversation title";
  const input = document.createElement("input");
  input.id = inputId;
  input.dataset.testid = "rename-input";
  input.value = conversation.title || "";
  input.maxLength = 200;
  input.required = true;
  const save = document.createElement("button");
  save.type = "submit";
  save.className = "button small primary";
  save.textContent = "Save";
  form.append(label, input, save);

  let finished = false;
  const finish = async (commit) => {
    if (finished) return;
    finished = true;
    const title = input.value.trim();
    if (!commit || !title || title === conversation.title) {
      renderConversations();
      return;
    }
    try {
      const updated = await getJSON(conversationPath(conversation.id), {
        method: "PATCH",
        body: { title },
      });
      replaceConversation(updated);
    } catch (err) {
      report(err);
    }
    renderConversations();
  };
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    finish(true);
  });
  input.addEventListener("keydown", (event) => {
    if (event.key === "Escape") {
      event.preventDefault();
      finish(false);
    }
  });
  form.addEventListener("focusout", (event) => {
    if (!form.contains(event.relatedTarget)) finish(true);
  });
  li.replaceChildren(form);
  input.focus();
  input.select();
}

function replaceConversation(updated) {
  const i = state.conversations.findIndex((c) => c.id === updated.id);
  if (i >= 0) state.conversations[i] = { ...state.conversations[i], ...updated };
  else state.conversations.unshift(updated);
  if (updated.id === state.currentId) setTitle(titleOf(updated));
}

async function deleteConversation(conversation) {
  if (!window.confirm(`Delete “${titleOf(conversation)}”? This cannot be undone.`)) return;
  try {
    await api(conversationPath(conversation.id), { method: "DELETE" });
  } catch (err) {
    report(err);
    return;
  }
  state.conversations = state.conversations.filter((c) => c.id !== conversation.id);
  renderConversations();
  if (conversation.id === state.currentId) newChat();
}

// ---------------------------------------------------------------------------------------------
// Navigation: the open conversation lives in the URL hash (#c/<id>), so reload keeps it.

function route() {
  const m = /^#c\/(.+)$/.exec(location.hash);
  if (m) openConversation(decodeURIComponent(m[1]));
  else showNewChat();
}

function newChat() {
  if (location.hash) history.pushState(null, "", location.pathname + location.search);
  showNewChat();
  ui.prompt.focus();
}

function showNewChat() {
  stopStreaming();
  state.loadSeq++;
  state.currentId = null;
  applyRetrievalSetting();
  hideError();
  setTitle("New chat");
  clearMessages();
  renderConversations();
  closeSidebarIfNarrow();
}

async function openConversation(id) {
  stopStreaming();
  const seq = ++state.loadSeq;
  state.currentId = id;
  applyRetrievalSetting();
  hideError();
  setTitle(titleOf(state.conversations.find((c) => c.id === id)));
  renderConversations();
  clearMessages();
  ui.messages.setAttribute("aria-busy", "true");
  closeSidebarIfNarrow();
  try {
    const conversation = await getJSON(conversationPath(id));
    if (seq !== state.loadSeq) return;
    setTitle(titleOf(conversation));
    for (const message of conversation.messages || []) {
      if (message.role !== "user" && message.role !== "assistant") continue;
      const view = appendMessage(message.role, {
        id: message.id,
        status: message.status,
        charter: message.charter,
        finishReason: message.finish_reason,
        error: message.error,
        feedback: message.feedback,
      });
      view.setText(message.content || "");
      view.flush();
    }
    scrollToBottom();
  } catch (err) {
    if (seq !== state.loadSeq) return;
    report(err);
  } finally {
    if (seq === state.loadSeq) ui.messages.setAttribute("aria-busy", "false");
  }
}

function setTitle(title) {
  ui.title.textContent = title;
  document.title = title === "New chat" ? "Charter" : `${title} · Charter`;
}

function clearMessages() {
  ui.messages.replaceChildren(ui.emptyState);
  ui.emptyState.hidden = false;
}

function closeSidebarIfNarrow() {
  if (NARROW.matches) setSidebarOpen(false);
}

function setSidebarOpen(open) {
  document.body.classList.toggle("sidebar-open", open);
  ui.toggleSidebar.setAttribute("aria-expanded", String(open));
}

// ---------------------------------------------------------------------------------------------
// Messages

const STATUS_TEXT = {
  stopped: "Stopped: the answer is incomplete",
  incomplete: "Incomplete: the answer was cut off",
  generating: "Still being generated",
  live: "Generating…",
  length: "Reached the token limit",
};

class MessageView {
  constructor(role, { id, status, charter, finishReason, error, feedback } = {}) {
    this.role = role;
    this.text = "";
    this.pending = false;
    /** The principle of a `charter.replace` seen while streaming (null: none). */
    this.replacedBy = null;
    this.notice = null;
    this.article = document.createElement("article");
    this.article.className = `message ${role}`;
    this.article.dataset.testid = "message";
    this.article.dataset.role = role;
    if (id) this.article.dataset.messageId = id;

    const who = document.createElement("p");
    who.className = "message-role";
    who.textContent = role === "user" ? "You" : "Charter";
    this.who = who;
    this.body = document.createElement("div");
    this.body.className = "message-content";
    this.body.dataset.testid = "message-content";
    this.article.append(who, this.body);
    /** @type {Map<number, object>} cited sources by number */
    this.citations = new Map();
    this.sourcesList = null;

    if (role === "assistant") {
      this.foot = document.createElement("div");
      this.foot.className = "message-foot";
      this.badge = document.createElement("p");
      this.badge.className = "status-badge";
      this.badge.dataset.testid = "message-status";
      this.badge.hidden = true;
      this.feedback = new FeedbackControls(getJSON, report);
      this.foot.append(this.badge, this.feedback.root);
      this.article.append(this.foot);
    }
    this.error = !error ? null : typeof error === "string" ? error : error.message || null;
    this.setStatus(status || "complete", finishReason);
    if (charter) this.setCharter(charter);
    if (id && status !== "generating") this.enableFeedback(feedback);
  }

  setId(id) {
    this.article.dataset.messageId = id;
  }

  /** Offer the feedback controls once the answer is stored and finished. */
  enableFeedback(summary) {
    const id = this.article.dataset.messageId;
    if (this.feedback && id) this.feedback.attach(id, summary);
  }

  setText(text) {
    this.text = text;
    if (this.role === "user") {
      this.body.textContent = text;
      return;
    }
    // Re-rendering the whole answer is cheap at chat sizes; at most once per frame.
    if (!this.pending) {
      this.pending = true;
      requestAnimationFrame(() => this.flush());
    }
  }

  flush() {
    if (this.role === "user") return;
    const follow = isNearBottom();
    this.pending = false;
    const fragment = renderMarkdown(this.text);
    if (this.citations.size) {
      linkCitations(fragment, new Set(this.citations.keys()), (n) => this.citationLink(n));
    }
    this.body.replaceChildren(fragment);
    if (follow) scrollToBottom();
  }

  /**
   * The constitution stopped the answer: what was shown is swapped for the governed text
   * (its refusal or an accepted revision). The draft never reaches the page.
   */
  replaceText(content, principle) {
    this.replacedBy = principle == null ? "" : String(principle);
    this.text = content;
    this.flush();
    this.setNotice(noticeText(null, this.replacedBy));
  }

  /** The notice above an answer the constitution changed; null removes it. */
  setNotice(text) {
    if (!text) {
      if (this.notice) this.notice.remove();
      this.notice = null;
      return;
    }
    if (!this.notice) {
      this.notice = document.createElement("p");
      this.notice.className = "governance-notice";
      this.notice.dataset.testid = "governance-notice";
      // A status region: the swap is announced, not only seen.
      this.notice.setAttribute("role", "status");
      this.who.after(this.notice);
    }
    this.notice.textContent = text;
  }

  /** The cited sources, and the checked answer text that replaces what was streamed. */
  setCitations(charter) {
    if (typeof charter.final_text === "string") this.text = charter.final_text;
    const list = Array.isArray(charter.citations) ? charter.citations : [];
    this.citations = new Map(
      list.filter((c) => c && Number.isInteger(c.n)).map((c) => [c.n, c]),
    );
    if (this.sourcesList) this.sourcesList.remove();
    this.sourcesList = this.citations.size ? this.renderSources() : null;
    if (this.sourcesList) this.body.after(this.sourcesList);
    this.flush();
  }

  citationLink(n) {
    const source = this.citations.get(n);
    const button = document.createElement("button");
    button.type = "button";
    button.className = "citation-link";
    button.dataset.testid = "citation-link";
    button.dataset.n = String(n);
    button.textContent = String(n);
    button.title = source.title || `Source ${n}`;
    button.setAttribute("aria-label", `Source ${n}: ${source.title || "untitled"}`);
    button.addEventListener("click", () => this.openSource(n));
    return button;
  }

  openSource(n) {
    const item = this.sourcesList && this.sourcesList.querySelector(`[data-n="${n}"] details`);
    if (!item) return;
    item.open = true;
    item.scrollIntoView({ block: "nearest", behavior: "smooth" });
    item.querySelector("summary").focus({ preventScroll: true });
  }

  renderSources() {
    const section = document.createElement("section");
    section.className = "citations";
    section.dataset.testid = "citations";
    section.setAttribute("aria-label", "Sources");
    const heading = document.createElement("p");
    heading.className = "citations-title";
    heading.textContent = "Sources";
    const ol = document.createElement("ol");
    for (const [n, c] of [...this.citations].sort((a, b) => a[0] - b[0])) {
      const li = document.createElement("li");
      li.dataset.testid = "citation";
      li.dataset.n = String(n);
      const details = document.createElement("details");
      const summary = document.createElement("summary");
      const mark = document.createElement("span");
      mark.className = "citation-number";
      mark.textContent = `[${n}]`;
      summary.append(mark, ` ${c.title || "Untitled"}`);
      if (c.by === "attributed") {
        const note = document.createElement("span");
        note.className = "muted small";
        note.textContent = " (marked by Charter: the wording matches this passage)";
        summary.append(note);
      }
      const meta = document.createElement("dl");
      meta.className = "citation-meta";
      const where = [
        ["file", c.doc_id ?? (c.origin === "self" ? "the model's own file" : null)],
        ["page", c.page],
        ["characters", Number.isInteger(c.start) ? `${c.start}–${c.end}` : null],
        ["score", typeof c.score === "number" ? c.score.toFixed(2) : null],
      ];
      for (const [key, value] of where) {
        if (value === null || value === undefined) continue;
        const dt = document.createElement("dt");
        dt.textContent = key;
        const dd = document.createElement("dd");
        dd.textContent = String(value);
        meta.append(dt, dd);
      }
      const quote = document.createElement("blockquote");
      quote.className = "citation-quote";
      quote.dataset.testid = "citation-quote";
      quote.textContent = c.quote || "";
      details.append(summary, meta, quote);
      li.append(details);
      ol.append(li);
    }
    section.append(heading, ol);
    return section;
  }

  /** status: complete | generating | incomplete | stopped (an incomplete the user asked for). */
  setStatus(status, finishReason) {
    const stored = status === "stopped" ? "incomplete" : status;
    this.article.dataset.status = stored;
    this.article.classList.toggle("streaming", status === "generating" && this.live === true);
    if (!this.badge) return;
    let key = status;
    if (status === "complete" && finishReason === "length") key = "length";
    if (status === "generating" && this.live) key = "live";
    let text = STATUS_TEXT[key];
    // A stored message may say why it was cut off.
    if (stored === "incomplete" && this.error) text += ` (${this.error})`;
    this.badge.hidden = !text;
    this.badge.textContent = text || "";
    this.badge.className = `status-badge ${stored}`;
  }

  setCharter(charter) {
    if (!this.foot || !charter || typeof charter !== "object") return;
    if ("citations" in charter || "final_text" in charter) this.setCitations(charter);
    if (this.details) this.details.remove();
    const details = document.createElement("details");
    details.className = "message-details";
    details.dataset.testid = "message-details";
    const summary = document.createElement("summary");
    summary.dataset.testid = "details-toggle";
    const label = document.createElement("span");
    label.textContent = "Details";
    summary.append(label);
    const gist = summaryOf(charter);
    if (gist) {
      const meta = document.createElement("span");
      meta.className = "details-gist";
      meta.textContent = gist;
      summary.append(meta);
    }
    const panel = document.createElement("div");
    panel.className = "details-panel";
    panel.dataset.testid = "details-panel";
    // The trace is told in words; the raw object stays one click away for the curious.
    const { trace, ...rest } = charter;
    panel.append(governanceSection(trace), renderTree(rest, ""));
    if (trace && typeof trace === "object") {
      const raw = document.createElement("details");
      raw.className = "raw-trace";
      const rawSummary = document.createElement("summary");
      rawSummary.textContent = "Constitution trace (raw)";
      raw.append(rawSummary, renderTree(trace, "trace"));
      panel.append(raw);
    }
    details.append(summary, panel);
    this.foot.append(details);
    this.details = details;
    if (trace && typeof trace === "object") {
      this.setNotice(noticeText(trace, this.replacedBy));
    }
    if (charter.finish_reason === "length" && this.article.dataset.status === "complete") {
      this.setStatus("complete", "length");
    }
  }
}

/**
 * Token confidence: each generated token shaded by how likely the model found it (redder is
 * less certain), its probability and the top alternatives on hover. Text only, no HTML.
 * @param {{text: string, logprob: number, entropy?: number,
 *          top: {token: string, logprob: number}[]}[]} tokens
 */
function confidenceView(tokens) {
  const box = document.createElement("div");
  box.className = "confidence-view";
  box.dataset.testid = "confidence-view";
  const label = document.createElement("p");
  label.className = "muted small";
  label.textContent = "Token confidence (redder is less certain; hover for alternatives)";
  const text = document.createElement("p");
  text.className = "confidence-text";
  for (const t of tokens) {
    const p = Math.exp(t.logprob);
    const span = document.createElement("span");
    span.className = "token";
    span.dataset.testid = "token";
    span.dataset.p = p.toFixed(4);
    span.textContent = t.text;
    const doubt = Math.max(0, 1 - p);
    if (doubt > 0.1) span.style.backgroundColor = `rgba(214, 69, 65, ${(doubt * 0.55).toFixed(3)})`;
    const alts = t.top
      .filter((a) => a.token !== t.text)
      .map((a) => `${JSON.stringify(a.token)} ${Math.exp(a.logprob).toFixed(2)}`)
      .join(", ");
    span.title = `p ${p.toFixed(2)}` + (alts ? ` · instead: ${alts}` : "");
    text.append(span);
  }
  box.append(label, text);
  return box;
}

function appendMessage(role, options) {
  ui.emptyState.hidden = true;
  const view = new MessageView(role, options);
  ui.messages.append(view.article);
  return view;
}

function summaryOf(charter) {
  const parts = [];
  if (charter.model) parts.push(String(charter.model));
  const t = charter.timings || {};
  if (typeof t.total_ms === "number") parts.push(`${(t.total_ms / 1000).toFixed(1)} s`);
  if (typeof t.tokens_per_second === "number") {
    parts.push(`${t.tokens_per_second.toFixed(1)} tok/s`);
  }
  const decision = decisionWord(charter.trace);
  if (decision) parts.push(`constitution: ${decision}`);
  return parts.join(" · ");
}

// The `charter` object grows (trace, citations, scores...), so it is shown generically:
// objects as definition lists, lists of flat records as tables, anything else as a list.
function renderTree(value, path) {
  if (Array.isArray(value)) {
    if (value.length === 0) return leaf("(none)", "empty");
    if (value.every(isFlatRecord)) return recordTable(value, path);
    const ol = document.createElement("ol");
    ol.className = "tree-list";
    value.forEach((item, i) => {
      const li = document.createElement("li");
      li.dataset.key = `${path}[${i}]`;
      li.append(renderTree(item, `${path}[${i}]`));
      ol.append(li);
    });
    return ol;
  }
  if (value !== null && typeof value === "object") {
    const entries = Object.entries(value);
    if (entries.length === 0) return leaf("(empty)", "empty");
    const dl = document.createElement("dl");
    dl.className = "tree";
    for (const [key, item] of entries) {
      const childPath = path ? `${path}.${key}` : key;
      const dt = document.createElement("dt");
      dt.textContent = key;
      const dd = document.createElement("dd");
      dd.dataset.key = childPath;
      dd.append(renderTree(item, childPath));
      dl.append(dt, dd);
    }
    return dl;
  }
  return leaf(formatValue(value), value === null ? "empty" : typeof value);
}

function isFlatRecord(item) {
  return item !== null && typeof item === "object" && !Array.isArray(item) &&
    Object.values(item).every((v) => v === null || typeof v !== "object");
}

function recordTable(rows, path) {
  const columns = [...new Set(rows.flatMap((row) => Object.keys(row)))];
  const wrap = document.createElement("div");
  wrap.className = "table-wrap";
  const table = document.createElement("table");
  const head = table.createTHead().insertRow();
  for (const column of columns) {
    const th = document.createElement("th");
    th.scope = "col";
    th.textContent = column;
    head.append(th);
  }
  const body = table.createTBody();
  rows.forEach((row, i) => {
    const tr = body.insertRow();
    for (const column of columns) {
      const td = tr.insertCell();
      td.dataset.key = `${path}[${i}].${column}`;
      td.append(column in row ? leaf(formatValue(row[column]), typeof row[column]) : "");
    }
  });
  wrap.append(table);
  return wrap;
}

function leaf(text, kind) {
  const span = document.createElement("span");
  span.className = `tree-value ${kind}`;
  span.textContent = text;
  return span;
}

function formatValue(value) {
  if (value === null || value === undefined) return "null";
  if (typeof value === "number") {
    return Number.isInteger(value)
      ? value.toLocaleString("en-US")
      : value.toLocaleString("en-US", { maximumFractionDigits: 2 });
  }
  return String(value);
}

function isNearBottom() {
  const m = ui.messages;
  return m.scrollHeight - m.scrollTop - m.clientHeight < 120;
}

function scrollToBottom() {
  ui.messages.scrollTop = ui.messages.scrollHeight;
}

// ---------------------------------------------------------------------------------------------
// Sending and streaming

function titleFrom(text) {
  const line = text.trim().split("\n")[0].replace(/\s+/g, " ");
  return line.length > 60 ? `${line.slice(0, 59)}…` : line;
}

function setStreaming(on) {
  ui.send.disabled = on;
  ui.stop.hidden = !on;
  ui.messages.setAttribute("aria-busy", String(on));
}

function stopStreaming() {
  if (state.streaming) state.streaming.controller.abort();
}

async function send() {
  const text = ui.prompt.value;
  if (!text.trim() || state.streaming) return;
  hideError();
  const controller = new AbortController();
  const { signal } = controller;
  const userView = appendMessage("user");
  userView.setText(text);
  const view = appendMessage("assistant", { status: "generating" });
  view.live = true;
  view.setStatus("generating");
  state.streaming = { controller, view };
  setStreaming(true);
  ui.prompt.value = "";
  autosize();
  scrollToBottom();

  let received = "";
  const tokens = [];
  const withConfidence = ui.showConfidence.checked;
  const retrieval = currentRetrieval();
  let finishReason = null;
  let finished = false;
  let replaced = false;
  try {
    // The conversation is created first so its id is known even if the answer is stopped
    // before the final chunk (which is what carries `charter.conversation_id`).
    if (!state.currentId) {
      const conversation = await getJSON("v1/conversations", {
        method: "POST",
        body: { title: titleFrom(text) },
        signal,
      });
      state.currentId = conversation.id;
      state.loadSeq++;
      history.replaceState(null, "", `#c/${encodeURIComponent(conversation.id)}`);
      rememberRetrieval(conversation.id, retrieval);
      replaceConversation(conversation);
      renderConversations();
    }
    const response = await api("v1/chat/completions", {
      method: "POST",
      body: {
        model: "charter",
        messages: [{ role: "user", content: text }],
        stream: true,
        conversation_id: state.currentId,
        // Always explicit, so a server default collection never surprises the page.
        charter: { retrieval: retrieval.enabled ? { collection: retrieval.collection } : false },
        ...(withConfidence ? { logprobs: true, top_logprobs: 5 } : {}),
      },
      signal,
      accept: "text/event-stream",
    });
    const messageId = response.headers.get("X-Charter-Message-Id");
    if (messageId) view.setId(messageId);
    for await (const data of readEvents(response)) {
      if (data.trim() === "[DONE]") {
        finished = true;
        break;
      }
      let chunk;
      try {
        chunk = JSON.parse(data);
      } catch {
        continue; // not ours to understand (a comment or keep-alive)
      }
      if (chunk.error) throw new ApiError(chunk.error.message || "The answer failed.");
      const choice = Array.isArray(chunk.choices) ? chunk.choices[0] : null;
      const swap = chunk.charter && chunk.charter.replace;
      if (swap && typeof swap.content === "string") {
        // The constitution stopped the answer: everything shown so far gives way to the
        // governed text. Token confidence described the discarded text, so it goes too.
        replaced = true;
        received = swap.content;
        tokens.length = 0;
        view.replaceText(swap.content, swap.principle);
        if (choice && choice.finish_reason) finishReason = choice.finish_reason;
        continue;
      }
      const piece = choice && choice.delta ? choice.delta.content : null;
      if (typeof piece === "string" && piece && !replaced) {
        received += piece;
        view.setText(received);
        const lp = choice.logprobs && Array.isArray(choice.logprobs.content)
          ? choice.logprobs.content[0] : null;
        if (lp && typeof lp.logprob === "number") {
          tokens.push({ text: piece, logprob: lp.logprob, top: lp.top_logprobs || [] });
        }
      }
      if (choice && choice.finish_reason) finishReason = choice.finish_reason;
      if (chunk.charter) view.setCharter(chunk.charter);
    }
    view.live = false;
    if (finished) {
      view.setStatus("complete", finishReason);
    } else {
      view.setStatus("incomplete");
      showError("The connection closed before the answer was finished.");
    }
  } catch (err) {
    view.live = false;
    if (err.name === "AbortError") {
      view.setStatus("stopped");
    } else if (!received && err instanceof ApiError && err.status) {
      // Refused before any answer (bad request, key, rate limit): nothing was said, so take
      // the message back into the box to send again.
      userView.article.remove();
      view.article.remove();
      if (!ui.messages.querySelector(".message")) ui.emptyState.hidden = false;
      if (!ui.prompt.value) ui.prompt.value = text;
      autosize();
      report(err);
    } else {
      view.setStatus("incomplete");
      report(err);
    }
  } finally {
    if (tokens.length && view.foot) view.foot.prepend(confidenceView(tokens));
    view.flush();
    if (view.article.isConnected) view.enableFeedback();
    if (state.streaming && state.streaming.controller === controller) state.streaming = null;
    setStreaming(Boolean(state.streaming));
    loadConversations();
  }
}

function autosize() {
  const box = ui.prompt;
  box.style.height = "auto";
  box.style.height = `${Math.min(box.scrollHeight, 240)}px`;
}

// ---------------------------------------------------------------------------------------------
// Answering from documents: a toggle and a collection picker, remembered per conversation
// (and the last choice for new chats) in localStorage.

function readRetrievalStore() {
  try {
    const data = JSON.parse(localStorage.getItem(RETRIEVAL_STORAGE) || "{}");
    return data && typeof data === "object" ? data : {};
  } catch {
    return {};
  }
}

function rememberRetrieval(conversationId, setting) {
  const data = readRetrievalStore();
  data.page = setting;
  if (conversationId) {
    const conversations = { ...(data.conversations || {}), [conversationId]: setting };
    // Keep the newest 200: this is a convenience, not a record.
    const ids = Object.keys(conversations);
    for (const id of ids.slice(0, Math.max(0, ids.length - 200))) delete conversations[id];
    delete conversations[conversationId];
    conversations[conversationId] = setting;
    data.conversations = conversations;
  }
  try {
    localStorage.setItem(RETRIEVAL_STORAGE, JSON.stringify(data));
  } catch {
    // Not remembered; the controls still work for this page.
  }
}

/** What the controls say now: {enabled, collection}. */
function currentRetrieval() {
  const collection = ui.collectionPicker.value || null;
  return { enabled: Boolean(ui.useDocs.checked && collection), collection };
}

/** Set the controls from what was remembered for the open conversation (or the page). */
function applyRetrievalSetting() {
  const data = readRetrievalStore();
  const saved = (state.currentId && data.conversations && data.conversations[state.currentId]) ||
    data.page || {
      enabled: Boolean(state.defaultCollection),
      collection: state.defaultCollection,
    };
  const known = state.collections.map((c) => c.id);
  if (saved.collection && known.includes(saved.collection)) {
    ui.collectionPicker.value = saved.collection;
  } else if (state.defaultCollection && known.includes(state.defaultCollection)) {
    ui.collectionPicker.value = state.defaultCollection;
  }
  ui.useDocs.checked = Boolean(saved.enabled) && known.length > 0 &&
    (!saved.collection || known.includes(saved.collection));
  ui.collectionPicker.disabled = known.length === 0 || !ui.useDocs.checked;
}

function onRetrievalChange() {
  ui.collectionPicker.disabled = !ui.useDocs.checked;
  rememberRetrieval(state.currentId, currentRetrieval());
}

async function loadCollections() {
  try {
    const page = await getJSON("v1/collections");
    state.collections = Array.isArray(page.data) ? page.data : [];
    state.defaultCollection = page.default || null;
  } catch (err) {
    state.collections = [];
    if (!(err instanceof ApiError && err.status === 401)) console.error(err);
  }
  ui.collectionPicker.replaceChildren(
    ...state.collections.map((c) => {
      const option = document.createElement("option");
      option.value = c.id;
      option.textContent = `${c.id} (${c.documents} document${c.documents === 1 ? "" : "s"})`;
      return option;
    }),
  );
  const none = state.collections.length === 0;
  ui.useDocs.disabled = none;
  ui.collectionsNote.textContent = none
    ? "No document collections yet: add some with `charter ingest`."
    : "";
  applyRetrievalSetting();
}

// ---------------------------------------------------------------------------------------------
// Wiring

ui.composer.addEventListener("submit", (event) => {
  event.preventDefault();
  send();
});
ui.prompt.addEventListener("keydown", (event) => {
  if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
    event.preventDefault();
    if (!ui.send.disabled) ui.composer.requestSubmit();
  }
});
ui.prompt.addEventListener("input", autosize);
ui.stop.addEventListener("click", stopStreaming);
ui.newChat.addEventListener("click", newChat);
ui.toggleSidebar.addEventListener("click", () =>
  setSidebarOpen(!document.body.classList.contains("sidebar-open")),
);
ui.errorDismiss.addEventListener("click", hideError);
ui.keyForm.addEventListener("submit", saveKey);
ui.forgetKey.addEventListener("click", forgetKey);
ui.useDocs.addEventListener("change", onRetrievalChange);
ui.collectionPicker.addEventListener("change", onRetrievalChange);
window.addEventListener("hashchange", route);

ui.forgetKey.hidden = !storedKey();
route();
loadConversations();
loadCollections().finally(() => {
  document.documentElement.dataset.ready = "true";
});
