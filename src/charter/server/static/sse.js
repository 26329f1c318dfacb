// Server-sent events from a fetch() body. Network reads split the stream anywhere (inside a
// line, inside a UTF-8 character), so text is decoded as a stream and events are cut only at
// blank lines.

/**
 * Feed decoded text in with `push`; it returns the `data` payloads of the events completed so
 * far (multi-line data joined with "\n"). `end()` returns an event left unterminated.
 */
export class SSEParser {
  constructor() {
    this.buffer = "";
  }

  /** @param {string} text @returns {string[]} */
  push(text) {
    this.buffer += text;
    const out = [];
    for (;;) {
      const m = /\r\n\r\n|\n\n|\r\r/.exec(this.buffer);
      if (!m) break;
      const block = this.buffer.slice(0, m.index);
      this.buffer = this.buffer.slice(m.index + m[0].length);
      const data = dataOf(block);
      if (data !== null) out.push(data);
    }
    return out;
  }

  /** @returns {string[]} */
  end() {
    const data = this.buffer ? dataOf(this.buffer) : null;
    this.buffer = "";
    return data === null ? [] : [data];
  }
}

function dataOf(block) {
  const lines = [];
  for (const line of block.split(/\r\n|\n|\r/)) {
    if (line.startsWith("data:")) lines.push(line.slice(line[5] === " " ? 6 : 5));
  }
  return lines.length ? lines.join("\n") : null;
}

/**
 * Yield each event's data from a fetch Response body.
 * @param {Response} response
 * @returns {AsyncGenerator<string>}
 */
export async function* readEvents(response) {
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  const parser = new SSEParser();
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      yield* parser.push(value);
    }
    yield* parser.end();
  } finally {
    // Also reached when the consumer stops early: close the connection rather than leak it.
    reader.cancel().catch(() => {});
  }
}
