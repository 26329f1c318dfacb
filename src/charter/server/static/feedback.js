// Thumbs up / down and "suggest a better answer" under each answer, saved with
// POST /v1/messages/{id}/feedback. The page labels as one reviewer (the API key's name, or
// "anonymous"); that reviewer's own label is shown pressed, and labelling again replaces it.
// Other reviewers' labels are theirs: the server never lets this page overwrite them.

/** The longest better answer the server accepts (it refuses longer ones, never cuts them). */
export const MAX_BETTER_CHARS = 20000;

let instances = 0;

export class FeedbackControls {
  /**
   * @param {(path: string, options: object) => Promise<object>} requestJSON the page's API call
   * @param {(err: unknown) => void} report shows an error to the user
   */
  constructor(requestJSON, report) {
    this.requestJSON = requestJSON;
    this.report = report;
    this.messageId = null;
    /** This reviewer's label: {rating, better, note} or null. */
    this.mine = null;
    const n = ++instances;

    this.root = document.createElement("div");
    this.root.className = "feedback";
    this.root.dataset.testid = "feedback";
    this.root.setAttribute("role", "group");
    this.root.setAttribute("aria-label", "Feedback on this answer");
    this.root.hidden = true;

    this.up = thumb("up", "Good answer", "feedback-up");
    this.down = thumb("down", "Bad answer", "feedback-down");
    this.up.addEventListener("click", () => this.rate("up"));
    this.down.addEventListener("click", () => this.rate("down"));

    this.form = document.createElement("form");
    this.form.className = "better-form";
    this.form.id = `better-form-${n}`;
    this.form.dataset.testid = "better-form";
    this.form.hidden = true;

    this.toggle = document.createElement("button");
    this.toggle.type = "button";
    this.toggle.className = "link-button small";
    this.toggle.dataset.testid = "better-toggle";
    this.toggle.setAttribute("aria-expanded", "false");
    this.toggle.setAttribute("aria-controls", this.form.id);
    this.toggle.addEventListener("click", () =>
      this.form.hidden ? this.openForm() : this.closeForm(),
    );

    this.status = document.createElement("span");
    this.status.className = "feedback-status muted small";
    this.status.dataset.testid = "feedback-status";
    this.status.setAttribute("role", "status");

    const label = document.createElement("label");
    label.htmlFor = `better-${n}`;
    label.className = "small";
    label.textContent = "A better answer";
    this.input = document.createElement("textarea");
    this.input.id = `better-${n}`;
    this.input.dataset.testid = "better-input";
    this.input.rows = 4;
    this.input.maxLength = MAX_BETTER_CHARS;
    this.input.addEventListener("keydown", (event) => {
      if (event.key === "Escape") {
        event.preventDefault();
        this.closeForm();
      }
    });
    const submit = document.createElement("button");
    submit.type = "submit";
    submit.className = "button small primary";
    submit.dataset.testid = "better-submit";
    submit.textContent = "Submit";
    const cancel = document.createElement("button");
    cancel.type = "button";
    cancel.className = "button small ghost";
    cancel.dataset.testid = "better-cancel";
    cancel.textContent = "Cancel";
    cancel.addEventListener("click", () => this.closeForm());
    const actions = document.createElement("div");
    actions.className = "better-actions";
    actions.append(submit, cancel);
    this.form.append(label, this.input, actions);
    this.form.addEventListener("submit", (event) => {
      event.preventDefault();
      this.submitBetter();
    });

    const row = document.createElement("div");
    row.className = "feedback-row";
    row.append(this.up, this.down, this.toggle, this.status);
    this.root.append(row, this.form);
    this.buttons = [this.up, this.down, submit];
    this.paint();
  }

  /** Show the controls for a stored answer; `summary` is its `feedback` from the API. */
  attach(messageId, summary) {
    this.messageId = messageId;
    if (summary) this.setSummary(summary);
    this.root.hidden = false;
  }

  setSummary(summary) {
    this.mine = summary && summary.mine ? summary.mine : null;
    this.paint();
  }

  paint() {
    const rating = this.mine ? this.mine.rating : null;
    this.up.setAttribute("aria-pressed", String(rating === "up"));
    this.down.setAttribute("aria-pressed", String(rating === "down"));
    this.toggle.textContent =
      this.mine && this.mine.better ? "Edit your better answer" : "Suggest a better answer";
  }

  say(text) {
    this.status.textContent = text;
  }

  /** Save a label (it replaces this reviewer's previous one); true when it was saved. */
  async save(label) {
    if (!this.messageId) return false;
    for (const b of this.buttons) b.disabled = true;
    try {
      const saved = await this.requestJSON(
        `v1/messages/${encodeURIComponent(this.messageId)}/feedback`,
        { method: "POST", body: label },
      );
      this.setSummary(saved.summary);
      return true;
    } catch (err) {
      this.report(err);
      return false;
    } finally {
      for (const b of this.buttons) b.disabled = false;
    }
  }

  /** A thumb keeps any better answer and note already given. */
  async rate(rating) {
    const label = { rating };
    if (this.mine && this.mine.better) label.better = this.mine.better;
    if (this.mine && this.mine.note) label.note = this.mine.note;
    if (await this.save(label)) {
      this.say(rating === "up" ? "Saved: a good answer." : "Saved: a bad answer.");
    }
  }

  openForm() {
    this.input.value = (this.mine && this.mine.better) || "";
    this.form.hidden = false;
    this.toggle.setAttribute("aria-expanded", "true");
    this.input.focus();
  }

  closeForm() {
    this.form.hidden = true;
    this.toggle.setAttribute("aria-expanded", "false");
    this.toggle.focus();
  }

  /** A better answer without a thumb counts as a thumbs down on the original. */
  async submitBetter() {
    const better = this.input.value;
    if (!better.trim()) {
      this.say("Write the better answer first (or Cancel).");
      this.input.focus();
      return;
    }
    const label = { rating: (this.mine && this.mine.rating) || "down", better };
    if (this.mine && this.mine.note) label.note = this.mine.note;
    if (await this.save(label)) {
      this.closeForm();
      this.say("Saved: your better answer.");
    }
  }
}

/** A thumb button; its icon is drawn by style.css (an answer holds no images or SVG). */
function thumb(direction, label, testid) {
  const button = document.createElement("button");
  button.type = "button";
  button.className = "icon-button feedback-thumb";
  button.dataset.testid = testid;
  button.setAttribute("aria-label", label);
  button.setAttribute("aria-pressed", "false");
  button.title = label;
  const icon = document.createElement("span");
  icon.className = `thumb-icon ${direction}`;
  icon.setAttribute("aria-hidden", "true");
  button.append(icon);
  return button;
}
