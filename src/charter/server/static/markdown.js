// Markdown for model output, built as DOM nodes: text only ever enters the page through
// createTextNode/textContent, so nothing a model writes can become HTML or script.
// Links are made only for http(s) URLs. The subset: headings, paragraphs, bold, italic,
// strikethrough, inline code, fenced code, lists (nested by indentation), quotes, rules.
// `linkCitations` then turns citation marks ([1], [1, 2]) into controls, outside code.

const FENCE = /^ {0,3}(`{3,}|~{3,})\s*([^`\s]*)[^`]*$/;
const HEADING = /^ {0,3}(#{1,6})[ \t]+(.*?)(?:[ \t]+#+)?[ \t]*$/;
const RULE = /^ {0,3}([-*_])(?:[ \t]*\1){2,}[ \t]*$/;
const QUOTE = /^ {0,3}> ?(.*)$/;
const ITEM = /^( *)([-*+]|\d{1,9}[.)])[ \t]+(.*)$/;
const BLANK = /^\s*$/;

/**
 * Render markdown `text` into a DocumentFragment.
 * @param {string} text model output (untrusted)
 * @returns {DocumentFragment}
 */
export function renderMarkdown(text) {
  const fragment = document.createDocumentFragment();
  renderBlocks(String(text ?? "").replace(/\r\n?/g, "\n").split("\n"), fragment);
  return fragment;
}

/** Accept only absolute http(s) URLs; anything else (javascript:, data:, relative) is null. */
export function safeUrl(raw) {
  try {
    const url = new URL(raw);
    return url.protocol === "http:" || url.protocol === "https:" ? url.href : null;
  } catch {
    return null;
  }
}

function el(tag, className) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  return node;
}

function renderBlocks(lines, parent) {
  let i = 0;
  while (i < lines.length) {
    const line = lines[i];
    if (BLANK.test(line)) {
      i++;
      continue;
    }
    let m;
    if ((m = FENCE.exec(line))) {
      const fence = m[1];
      const body = [];
      i++;
      // An unclosed fence runs to the end: that is what a half-streamed code block looks like.
      while (i < lines.length && !isClosingFence(lines[i], fence)) body.push(lines[i++]);
      i++;
      const pre = el("pre");
      const code = el("code");
      if (m[2]) {
        code.className = "language-" + m[2].replace(/[^\w+#.-]/g, "");
        pre.dataset.language = m[2];
      }
      code.textContent = body.join("\n");
      pre.append(code);
      parent.append(pre);
      continue;
    }
    if ((m = HEADING.exec(line))) {
      // The page owns h1 and h2; a message's headings sit below them in the outline.
      const level = m[1].length;
      const heading = el("h" + Math.min(level + 2, 6), "md-h" + level);
      renderInline(m[2], heading);
      parent.append(heading);
      i++;
      continue;
    }
    if (RULE.test(line)) {
      parent.append(el("hr"));
      i++;
      continue;
    }
    if (QUOTE.test(line)) {
      const inner = [];
      while (i < lines.length && (m = QUOTE.exec(lines[i]))) {
        inner.push(m[1]);
        i++;
      }
      const quote = el("blockquote");
      renderBlocks(inner, quote);
      parent.append(quote);
      continue;
    }
    if (ITEM.test(line)) {
      i = renderList(lines, i, parent);
      continue;
    }
    const para = [];
    while (i < lines.length && !BLANK.test(lines[i]) && !startsBlock(lines[i])) {
      para.push(lines[i].trim());
      i++;
    }
    const p = el("p");
    para.forEach((text, n) => {
      if (n) p.append(el("br"));
      renderInline(text, p);
    });
    parent.append(p);
  }
}

function isClosingFence(line, fence) {
  const trimmed = line.trim();
  return trimmed.length >= fence.length && trimmed === fence[0].repeat(trimmed.length);
}

function startsBlock(line) {
  return FENCE.test(line) || HEADING.test(line) || RULE.test(line) || QUOTE.test(line) ||
    ITEM.test(line);
}

// A list runs while lines are items of the same kind at its indentation, their indented
// continuation lines, or blank lines followed by more of the list. Each item's own lines
// (dedented) are rendered as blocks, so nested lists and code inside items work.
function renderList(lines, start, parent) {
  const first = ITEM.exec(lines[start]);
  const indent = first[1].length;
  const ordered = /\d/.test(first[2]);
  const list = el(ordered ? "ol" : "ul");
  if (ordered) {
    const n = parseInt(first[2], 10);
    if (n !== 1) list.start = n;
  }
  const items = [];
  let loose = false;
  let i = start;
  while (i < lines.length) {
    const line = lines[i];
    const m = ITEM.exec(line);
    if (m && m[1].length <= indent + 1 && /\d/.test(m[2]) === ordered) {
      items.push([m[3]]);
      i++;
      continue;
    }
    if (m && m[1].length <= indent + 1) break; // a list of the other kind starts
    if (BLANK.test(line)) {
      const next = lines.slice(i + 1).find((l) => !BLANK.test(l));
      const nextItem = next !== undefined && ITEM.exec(next);
      const continues = next !== undefined &&
        ((nextItem && nextItem[1].length <= indent + 1 && /\d/.test(nextItem[2]) === ordered) ||
          leadingSpaces(next) > indent + 1);
      if (!continues) break;
      if (!(nextItem && nextItem[1].length > indent + 1)) loose = true;
      items[items.length - 1].push("");
      i++;
      continue;
    }
    const spaces = leadingSpaces(line);
    if (spaces > indent) {
      items[items.length - 1].push(line.slice(Math.min(spaces, indent + 2)));
      i++;
      continue;
    }
    if (startsBlock(line)) break;
    // A lazy continuation line: part of the item's paragraph.
    items[items.length - 1].push(line.trim());
    i++;
  }
  for (const itemLines of items) {
    const li = el("li");
    renderBlocks(itemLines, li);
    // Tight lists keep their text bare rather than wrapped in paragraphs.
    if (!loose && li.firstChild && li.firstChild.nodeName === "P") {
      const p = li.firstChild;
      p.replaceWith(...p.childNodes);
    }
    list.append(li);
  }
  parent.append(list);
  return i;
}

function leadingSpaces(line) {
  return line.length - line.replace(/^ +/, "").length;
}

// Inline syntax, tried leftmost-first; at one position the alternatives are tried in order.
const INLINE = new RegExp(
  [
    /(`+)([^`]|[^`][\s\S]*?[^`])\1(?!`)/.source, // 1,2 code span
    /\[([^\]\n]+)\]\(\s*<?([^\s)>]+)>?(?:\s+"[^"\n]*")?\s*\)/.source, // 3,4 link
    /\*\*(?=\S)([\s\S]*?\S)\*\*/.source, // 5 bold
    /(?<![\w])__(?=\S)([\s\S]*?\S)__(?![\w])/.source, // 6 bold
    /\*(?=[^\s*])([\s\S]*?[^\s*])\*/.source, // 7 italic
    /(?<![\w])_(?=[^\s_])([\s\S]*?[^\s_])_(?![\w])/.source, // 8 italic
    /~~(?=\S)([\s\S]*?\S)~~/.source, // 9 strikethrough
    /<(https?:\/\/[^\s<>]+)>/.source, // 10 autolink
    /\bhttps?:\/\/[^\s<>"'`]+/.source, // 0 bare URL
  ].join("|"),
  "g",
);

function renderInline(text, parent, inLink = false) {
  const re = new RegExp(INLINE.source, "g");
  let last = 0;
  let m;
  while ((m = re.exec(text))) {
    if (m.index > last) parent.append(document.createTextNode(text.slice(last, m.index)));
    last = re.lastIndex;
    if (m[1] !== undefined) {
      const code = el("code");
      let body = m[2];
      if (/^ .* $/.test(body) && body.trim()) body = body.slice(1, -1);
      code.textContent = body;
      parent.append(code);
    } else if (m[3] !== undefined) {
      const href = inLink ? null : safeUrl(m[4]);
      if (href) {
        parent.append(link(href, m[3]));
      } else {
        // Not a link we will make (javascript:, relative, nested): show the source as text.
        parent.append(document.createTextNode(m[0]));
      }
    } else if (m[5] !== undefined || m[6] !== undefined) {
      const strong = el("strong");
      renderInline(m[5] ?? m[6], strong, inLink);
      parent.append(strong);
    } else if (m[7] !== undefined || m[8] !== undefined) {
      const em = el("em");
      renderInline(m[7] ?? m[8], em, inLink);
      parent.append(em);
    } else if (m[9] !== undefined) {
      const del = el("del");
      renderInline(m[9], del, inLink);
      parent.append(del);
    } else {
      let url = m[10] ?? m[0];
      let trailing = "";
      if (m[10] === undefined) {
        // Sentence punctuation after a bare URL is not part of it.
        const cut = /[.,;:!?)\]]+$/.exec(url);
        if (cut) {
          trailing = cut[0];
          url = url.slice(0, -trailing.length);
        }
      }
      const href = inLink ? null : safeUrl(url);
      parent.append(href ? link(href, url, true) : document.createTextNode(url));
      if (trailing) parent.append(document.createTextNode(trailing));
    }
  }
  if (last < text.length) parent.append(document.createTextNode(text.slice(last)));
}

function link(href, label, plain = false) {
  const a = el("a");
  a.href = href;
  a.rel = "noopener noreferrer";
  a.target = "_blank";
  if (plain) a.textContent = label;
  else renderInline(label, a, true);
  return a;
}

// A citation mark as the server writes it after checking: [1] or [1, 2].
const CITATION = /\[(\d{1,3}(?:, \d{1,3})*)\]/g;
const HAS_CITATION = new RegExp(CITATION.source); // no /g: test() keeps no state

/**
 * Replace the citation marks in `root`'s text (not inside code, pre, links or buttons) whose
 * numbers are all in `known` with what `makeLink(n)` returns for each number.
 * @param {Node} root rendered markdown
 * @param {Set<number>} known the source numbers that exist
 * @param {(n: number) => Node} makeLink
 * @returns {number} how many marks were linked
 */
export function linkCitations(root, known, makeLink) {
  const walker = document.createTreeWalker(root, NodeFilter.SHOW_TEXT, {
    acceptNode(node) {
      for (let p = node.parentNode; p && p !== root; p = p.parentNode) {
        if (["CODE", "PRE", "A", "BUTTON"].includes(p.nodeName)) return NodeFilter.FILTER_REJECT;
      }
      return HAS_CITATION.test(node.data) ? NodeFilter.FILTER_ACCEPT : NodeFilter.FILTER_SKIP;
    },
  });
  const nodes = [];
  for (let node = walker.nextNode(); node; node = walker.nextNode()) nodes.push(node);
  let linked = 0;
  for (const node of nodes) {
    const text = node.data;
    const out = document.createDocumentFragment();
    let last = 0;
    for (const m of text.matchAll(CITATION)) {
      const numbers = m[1].split(", ").map(Number);
      if (!numbers.every((n) => known.has(n))) continue;
      out.append(document.createTextNode(text.slice(last, m.index)));
      out.append(document.createTextNode("["));
      numbers.forEach((n, i) => {
        if (i) out.append(document.createTextNode(", "));
        out.append(makeLink(n));
      });
      out.append(document.createTextNode("]"));
      last = m.index + m[0].length;
      linked++;
    }
    if (last === 0) continue;
    out.append(document.createTextNode(text.slice(last)));
    node.replaceWith(out);
  }
  return linked;
}
