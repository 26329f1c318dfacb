"""Decode speed of the llama.cpp backend with and without logprobs (top 5 + entropy)."""
import statistics, time
from charter.backends.llamacpp import LlamaCppBackend, LlamaCppOptions
from charter.types import Message, Params
b = LlamaCppBackend(LlamaCppOptions(n_threads=2)); b.load()
msgs = [Message(role="user", content="Write a long story about a lighthouse keeper.")]
res = {False: [], True: []}
for i in range(6):
    for lp in (False, True):
        t0 = None; n = 0
        for ev in b.stream(msgs, Params(max_tokens=64, temperature=0, logprobs=lp, top_logprobs=5 if lp else 0)):
            if ev.kind == "token":
                n += 1
                if t0 is None: t0 = time.perf_counter()
        res[lp].append((n - 1) / (time.perf_counter() - t0))
for lp in (False, True):
    print("logprobs" if lp else "plain   ", f"median {statistics.median(res[lp]):.1f} tok/s", [round(x,1) for x in res[lp]])
